using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;

namespace Parley.Core.Models;

/// <summary>
/// Adds every call's token usage to the <see cref="UsageMeter"/> found in the options. Uses the provider's
/// <see cref="UsageContent"/>; when a provider reports none, estimates both sides with <see cref="TokenCounter"/> so
/// that every token is accounted for.
/// </summary>
public sealed class UsageMeteringChatClient(IChatClient innerClient, TokenCounter tokens) : DelegatingChatClient(innerClient)
{
    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        var response = await base.GetResponseAsync(list, options, cancellationToken);
        if (Meter(options) is { } meter)
        {
            if (response.Usage is { } usage) meter.Add(usage.InputTokenCount ?? 0, usage.OutputTokenCount ?? 0);
            else meter.Add(Estimate(list), tokens.Count(response.Text));
        }
        return response;
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        var meter = Meter(options);
        var reported = false;
        // The reply's text, counted only when the provider reported no usage. Copied as it streams rather than kept as its
        // pieces: a list held one string per token for the reply's life (docs/benchmarks.md, "The paced tail and idle
        // memory, a second pass").
        var text = new StringBuilder();
        await foreach (var update in base.GetStreamingResponseAsync(list, options, cancellationToken))
        {
            if (meter is not null)
            {
                // An indexed loop: Contents.OfType<T>() allocated an iterator and an enumerator for every token.
                var contents = update.Contents;
                for (var i = 0; i < contents.Count; i++)
                {
                    if (contents[i] is not UsageContent usage) continue;
                    reported = true;
                    meter.Add(usage.Details.InputTokenCount ?? 0, usage.Details.OutputTokenCount ?? 0);
                }
                if (!reported) text.Append(update.Text);
            }
            yield return update;
        }
        if (meter is not null && !reported) meter.Add(Estimate(list), tokens.Count(text.ToString()));
    }

    private static UsageMeter? Meter(ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(UsageMeter.Key, out var value) == true ? value as UsageMeter : null;

    private long Estimate(IEnumerable<ChatMessage> messages) => messages.Sum(m => (long)tokens.CountMessage(m.Text));
}
