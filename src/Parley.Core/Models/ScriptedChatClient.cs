using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Parley.Core.Models;

/// <summary>
/// A model that needs no network: streams a fixed text (or N numbered tokens) with an optional delay per token and
/// reports usage. Provider <c>scripted</c>: for demos, and for benchmarks that must measure Parley, not a model.
/// </summary>
public sealed class ScriptedChatClient(ModelOptions options, TokenCounter tokens) : IChatClient
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
        var first = true;
        for (var i = 0; i < pieces.Count; i++)
        {
            var piece = pieces[i];
            if (delay > TimeSpan.Zero) await Task.Delay(delay, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            var text = !(options.ScriptedTimestamps && options.ScriptedTokens > 0) ? piece
                : first ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece}@{called}@{System.Diagnostics.Stopwatch.GetTimestamp()}")
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{piece}@{System.Diagnostics.Stopwatch.GetTimestamp()}");
            first = false;
            yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ResponseId = responseId, ModelId = options.Model ?? "scripted" };
        }
        var input = messages.Sum(m => (long)tokens.CountMessage(m.Text));
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = input, OutputTokenCount = pieces.Count, TotalTokenCount = input + pieces.Count })])
        {
            ResponseId = responseId,
            FinishReason = ChatFinishReason.Stop,
        };
    }

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
