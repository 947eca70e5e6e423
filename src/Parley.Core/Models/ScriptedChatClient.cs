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
        for (var i = 0; i < pieces.Count; i++)
        {
            var piece = pieces[i];
            if (pacer is not null) await pacer.WaitForNextTickAsync(cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            var text = i == 0 && stampFirst ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece}@{called}@{System.Diagnostics.Stopwatch.GetTimestamp()}")
                : i > 0 && stampRest ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece}@{System.Diagnostics.Stopwatch.GetTimestamp()}")
                : piece;
            yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ResponseId = responseId, ModelId = options.Model ?? "scripted" };
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

    private IReadOnlyList<string>? _pieces;

    private List<string> Pieces()
    {
        if (options.ScriptedTokens > 0)
            return Enumerable.Range(1, options.ScriptedTokens).Select(i => i == 1 ? $"token{i}" : $" token{i}").ToList();
        var words = (options.ScriptedText ?? DefaultText).Split(' ');
        return words.Select((w, i) => i == 0 ? w : " " + w).ToList();
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose() { }
}
