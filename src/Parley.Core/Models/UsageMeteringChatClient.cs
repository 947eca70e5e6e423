using System.Runtime.CompilerServices;
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
        var text = new System.Text.StringBuilder();
        await foreach (var update in base.GetStreamingResponseAsync(list, options, cancellationToken))
        {
            if (meter is not null)
            {
                foreach (var usage in update.Contents.OfType<UsageContent>())
                {
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
