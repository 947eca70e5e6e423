using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Parley.Core.Agents.Flow;
using Parley.Core.Agents.Tools;
using Parley.Core.Models;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Core.Agents.Prompt;

/// <summary>One model-written reply: for a PROMPT agent version, or for a FLOW <c>prompt</c> node.</summary>
/// <param name="Thread">The thread (its history is the context).</param>
/// <param name="RunId">The run.</param>
/// <param name="ModelName">The configured model (<c>Parley:Models:&lt;name&gt;</c>).</param>
/// <param name="Instructions">The system instructions, already rendered.</param>
/// <param name="MaxOutputTokens">Cap on generated tokens, or null.</param>
/// <param name="Temperature">Sampling temperature, or null.</param>
/// <param name="Tools">Tools the model may call.</param>
public sealed record ModelTurn(ChatThread Thread, Guid RunId, string ModelName, string Instructions, int? MaxOutputTokens, double? Temperature, IReadOnlyList<ToolDefinition> Tools);

/// <summary>
/// Writes a reply with a model: sends the instructions and the thread's history (newest messages first kept, within
/// the model's <see cref="ModelOptions.ContextTokens"/> budget counted with a real tokenizer), streams the text as
/// <see cref="TextDeltaUpdate"/>s, runs the tool calls the model makes (each a <see cref="ToolCallUpdate"/> and a
/// <see cref="ToolResultUpdate"/>) and asks again with their results, and ends with the complete
/// <see cref="OutboundMessageUpdate"/> and its usage. Ending or handing off the conversation takes effect after the reply.
/// </summary>
public sealed class ModelTurnRunner(ModelCatalog models, IThreadStore threads, ToolInvoker tools, TokenCounter tokens)
{
    /// <summary>Model calls one reply may make (each tool round is one more call).</summary>
    public const int MaxModelCalls = 8;

    /// <summary>Runs the turn.</summary>
    /// <exception cref="ModelNotAvailableException">The model is not configured.</exception>
    /// <exception cref="InvalidOperationException">The model kept calling tools past <see cref="MaxModelCalls"/>.</exception>
    public async IAsyncEnumerable<AgentUpdate> RunAsync(ModelTurn turn, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var client = models.Get(turn.ModelName);
        var budget = models.Find(turn.ModelName)!.ContextTokens - (turn.MaxOutputTokens ?? 0);
        var messages = await BuildContextAsync(turn, budget, cancellationToken);
        var toolsByName = turn.Tools.ToDictionary(t => t.EffectiveName, StringComparer.Ordinal);
        var meter = new UsageMeter();
        var options = new ChatOptions
        {
            MaxOutputTokens = turn.MaxOutputTokens,
            Temperature = (float?)turn.Temperature,
            Tools = turn.Tools.Count == 0 ? null : turn.Tools.Select(Declare).ToList(),
            AdditionalProperties = new AdditionalPropertiesDictionary { [UsageMeter.Key] = meter },
        };

        // The reply's text is copied into a builder as it streams, not kept as its delta strings: those were one object
        // per token held for the whole reply, which every GC meanwhile promoted (docs/benchmarks.md, "The paced tail and
        // idle memory, a second pass").
        var reply = new StringBuilder();
        var deferred = new List<AgentUpdate>();
        for (var call = 1; ; call++)
        {
            var calls = new List<FunctionCallContent>();
            var roundStart = reply.Length;
            await foreach (var update in client.GetStreamingResponseAsync(messages, options, cancellationToken))
            {
                var text = update.Text;
                if (text.Length > 0)
                {
                    reply.Append(text);
                    yield return new TextDeltaUpdate(text);
                }
                // An indexed loop: Contents.OfType<T>() allocated an iterator and an enumerator for every token.
                var contents = update.Contents;
                for (var i = 0; i < contents.Count; i++)
                    if (contents[i] is FunctionCallContent functionCall) calls.Add(functionCall);
            }
            if (calls.Count == 0) break;
            var roundText = reply.ToString(roundStart, reply.Length - roundStart);
            if (call == MaxModelCalls)
                throw new InvalidOperationException($"The model called tools {MaxModelCalls} times in a row without answering.");

            var assistant = new ChatMessage(ChatRole.Assistant, [.. roundText.Length > 0 ? [new TextContent(roundText)] : Array.Empty<AIContent>(), .. calls]);
            messages.Add(assistant);
            var results = new List<AIContent>();
            foreach (var functionCall in calls)
            {
                var argumentsJson = JsonSerializer.Serialize(functionCall.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions);
                yield return new ToolCallUpdate(functionCall.CallId, functionCall.Name, argumentsJson);
                var outcome = toolsByName.TryGetValue(functionCall.Name, out var tool)
                    ? await tools.InvokeAsync(tool, argumentsJson, turn.Thread.Id, turn.RunId, cancellationToken)
                    : new ToolOutcome($$"""{"error":"no tool named {{JsonEncodedText.Encode(functionCall.Name)}}"}""", true, []);
                yield return new ToolResultUpdate(functionCall.CallId, functionCall.Name, outcome.ResultJson, outcome.IsError);
                foreach (var effect in outcome.Effects)
                {
                    if (effect is VariablesUpdate) yield return effect;
                    else deferred.Add(effect);
                }
                results.Add(new FunctionResultContent(functionCall.CallId, JsonDocument.Parse(outcome.ResultJson).RootElement.Clone()));
            }
            messages.Add(new ChatMessage(ChatRole.Tool, results));
        }

        yield return new OutboundMessageUpdate(reply.ToString(), [], meter.Total);
        foreach (var effect in deferred) yield return effect;
    }

    /// <summary>
    /// Tokens <paramref name="message"/> costs in the context: for a reply whose model reported usage, the output tokens
    /// it reported (the model's own count; with tool rounds it includes their output too, so it errs toward sending less)
    /// plus the per-message overhead; otherwise the text counted with <see cref="TokenCounter"/>. Every turn weighs the
    /// history it reads, and each new reply's text was tokenized again by the next turn: ≈ 6 % of the server's CPU with
    /// 1,000 threads streaming (docs/benchmarks.md).
    /// </summary>
    private int Cost(ThreadMessage message) =>
        message.Direction == MessageDirection.OUTBOUND && message.Usage is { OutputTokens: > 0 and <= int.MaxValue - 4 } usage
            ? (int)usage.OutputTokens + 4
            : tokens.CountMessage(message.MessageBody);

    /// <summary>Messages the first history read asks for; each further read asks for twice as many, up to <see cref="MaxHistoryPage"/>.</summary>
    private const int FirstHistoryPage = 32;

    /// <summary>Messages one history read asks for at most.</summary>
    private const int MaxHistoryPage = 512;

    /// <summary>
    /// The instructions and as much of the history as fits <paramref name="budget"/> tokens, newest kept first. The
    /// newest message (the one being answered) is always sent. A reply the model reported usage for costs its output
    /// tokens as the model counted them (<see cref="Cost"/>). The history is read newest first
    /// (<see cref="IThreadStore.ListMessagesBeforeAsync"/>) and the reads stop once the budget is full: every turn read
    /// the whole thread before, oldest first, so a thread's n-th turn read n messages to send the last few.
    /// </summary>
    internal async Task<List<ChatMessage>> BuildContextAsync(ModelTurn turn, int budget, CancellationToken cancellationToken)
    {
        var remaining = budget - tokens.CountMessage(turn.Instructions);
        var kept = new List<ChatMessage>();
        var before = long.MaxValue;
        var pageSize = FirstHistoryPage;
        var full = false;
        while (true)
        {
            var page = await threads.ListMessagesBeforeAsync(turn.Thread.Id, before, pageSize, cancellationToken);
            for (var i = 0; i < page.Count; i++)
            {
                var m = page[i];
                if (m.Status == MessageStatus.FAILED || string.IsNullOrEmpty(m.MessageBody)) continue;
                var cost = Cost(m);
                if (cost > remaining && kept.Count > 0)
                {
                    full = true;
                    break;
                }
                remaining -= cost;
                kept.Add(new ChatMessage(m.Direction == MessageDirection.INBOUND ? ChatRole.User : ChatRole.Assistant, m.MessageBody));
            }
            if (full || page.Count < pageSize) break;
            before = page[^1].Sequence;
            pageSize = Math.Min(pageSize * 2, MaxHistoryPage);
        }
        kept.Reverse();
        return [new ChatMessage(ChatRole.System, turn.Instructions), .. kept];
    }

    private static AITool Declare(ToolDefinition tool) => AIFunctionFactory.CreateDeclaration(
        tool.EffectiveName,
        tool.Description ?? BuiltInTools.Describe(tool.Type),
        tool.Type == "webhook" ? tool.Parameters!.Value : BuiltInTools.Schema(tool.Type));
}
