using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Parley.Core.Models;

/// <summary>
/// Fails a call whose model stays silent for longer than the timeout — before the first update or between two —
/// with a <see cref="TimeoutException"/> that says so. A long answer that keeps streaming never times out.
/// </summary>
public sealed class IdleTimeoutChatClient(IChatClient innerClient, TimeSpan timeout) : DelegatingChatClient(innerClient)
{
    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            return await base.GetResponseAsync(messages, options, cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Timeout();
        }
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        await using var enumerator = base.GetStreamingResponseAsync(messages, options, cts.Token).GetAsyncEnumerator(cts.Token);
        while (true)
        {
            bool more;
            try
            {
                more = await enumerator.MoveNextAsync();
            }
            catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException && cts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw Timeout();
            }
            if (!more) yield break;
            cts.CancelAfter(timeout); // restart the clock: the model is alive
            yield return enumerator.Current;
        }
    }

    private TimeoutException Timeout() => new($"The model sent nothing for {timeout.TotalSeconds:0.###} s.");
}
