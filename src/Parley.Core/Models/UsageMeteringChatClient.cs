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
        var texts = new List<string>(); // the reply's pieces, joined only when the provider reported no usage
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
                if (!reported && update.Text is { Length: > 0 } text) texts.Add(text);
            }
            yield return update;
        }
        if (meter is not null && !reported) meter.Add(Estimate(list), tokens.Count(string.Concat(texts)));
    }

    private static UsageMeter? Meter(ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(UsageMeter.Key, out var value) == true ? value as UsageMeter : null;

    private long Estimate(IEnumerable<ChatMessage> messages) => messages.Sum(m => (long)tokens.CountMessage(m.Text));
}
