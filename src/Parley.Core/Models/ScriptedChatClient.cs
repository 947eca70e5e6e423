using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Parley.Core.Models;

/// <summary>
/// A model that needs no network: streams a fixed text (or N numbered tokens) with an optional delay per token and
/// reports usage. Provider <c>scripted</c>: for demos, and for benchmarks that must measure Parley, not a model.
/// </summary>
/// <remarks>
/// Its output tokens are its pieces; its input tokens are estimated at one per 4 characters plus 4 per message
/// (<see cref="EstimateInputTokens"/>), not counted with a tokenizer: a real provider counts a prompt on its own
/// machines, and tokenizing every new reply of a thread when the next turn sent it back was 5.6 % of the server's
/// samples in the paced benchmark with 1,000 threads (docs/benchmarks.md), work a real deployment never does.
/// </remarks>
public sealed class ScriptedChatClient(ModelOptions options) : IChatClient
{
    /// <summary>What the scripted model says when no text is configured.</summary>
    public const string DefaultText = "This is Parley's scripted model. Configure a real model under Parley:Models to get real answers.";

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, chatOptions, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var pieces = _pieces ??= Pieces(); // the same for every call: built once (it was 200 strings per reply in benchmarks)
        var delay = TimeSpan.FromMilliseconds(options.ScriptedDelayMs);
        var responseId = $"scripted-{Guid.NewGuid():N}";
        var called = System.Diagnostics.Stopwatch.GetTimestamp();
        var stampFirst = options.ScriptedTimestamps && options.ScriptedTokens > 0;
        var stampRest = stampFirst && !options.ScriptedTimestampsFirstTokenOnly;
        // One timer per reply, not a Task.Delay per token: each of those allocated a timer and a promise (≈ 15 % of the
        // server's allocations with 1,000 paced replies, docs/benchmarks.md), which a benchmark charged to Parley.
        // A token comes one delay after the previous one, or at once if the consumer took longer than that, so a reply
        // keeps its pace (with Task.Delay each token also waited out the consumer's time and the timer's lateness: 1,000
        // replies paced at 25 ms offered ≈ 34,000 tokens/s, not 40,000). Whole milliseconds, as Task.Delay's; under 1 ms, none.
        using var pacer = delay >= TimeSpan.FromMilliseconds(1) ? new PeriodicTimer(delay) : null;
        var modelId = options.Model ?? "scripted";
        for (var i = 0; i < pieces.Count; i++)
        {
            var piece = pieces[i];
            if (pacer is not null) await pacer.WaitForNextTickAsync(cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            IList<AIContent> contents = i == 0 && stampFirst ? [new TextContent(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece.Text}@{called}@{System.Diagnostics.Stopwatch.GetTimestamp()}"))]
                : i > 0 && stampRest ? [new TextContent(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece.Text}@{System.Diagnostics.Stopwatch.GetTimestamp()}"))]
                : piece.Contents;
            yield return new ChatResponseUpdate { Role = ChatRole.Assistant, Contents = contents, ResponseId = responseId, ModelId = modelId };
        }
        var input = EstimateInputTokens(messages);
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = input, OutputTokenCount = pieces.Count, TotalTokenCount = input + pieces.Count })])
        {
            ResponseId = responseId,
            FinishReason = ChatFinishReason.Stop,
        };
    }

    /// <summary>The input tokens the scripted model reports: ⌈characters / 4⌉ + 4 per message (the rule of thumb for English text with OpenAI's tokenizers, and its chat format's per-message overhead).</summary>
    public static long EstimateInputTokens(IEnumerable<ChatMessage> messages) => messages.Sum(m => (m.Text.Length + 3) / 4 + 4L);

    private IReadOnlyList<Piece>? _pieces;

    /// <summary>
    /// One token of the script with the contents of its updates: a <see cref="TextContent"/> in a read-only list, built
    /// once and shared by every reply, so an update is the model's only allocation per token (its own contents were
    /// three more objects, ≈ 8 % of the server's allocations with 1,000 paced replies, docs/benchmarks.md, which the
    /// benchmarks charged to Parley). Nothing in Parley changes a model's contents, and Microsoft.Extensions.AI's
    /// <c>ToChatResponse</c> copies them into lists of its own (merging two or more texts into a new
    /// <see cref="TextContent"/>, a single one passed on as is). A caller that tried to change the list gets a
    /// <see cref="NotSupportedException"/>; the <see cref="TextContent"/>s in it are shared too and must not be changed.
    /// </summary>
    private sealed record Piece(string Text, IList<AIContent> Contents);

    private List<Piece> Pieces()
    {
        var texts = options.ScriptedTokens > 0
            ? Enumerable.Range(1, options.ScriptedTokens).Select(i => i == 1 ? $"token{i}" : $" token{i}")
            : (options.ScriptedText ?? DefaultText).Split(' ').Select((w, i) => i == 0 ? w : " " + w);
        return texts.Select(text => new Piece(text, new System.Collections.ObjectModel.ReadOnlyCollection<AIContent>([new TextContent(text)]))).ToList();
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose() { }
}
