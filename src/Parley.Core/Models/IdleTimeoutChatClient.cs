using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Parley.Core.Models;

/// <summary>
/// Fails a call whose model stays silent for longer than the timeout — before the first update or between two —
/// with a <see cref="TimeoutException"/> that says so. A long answer that keeps streaming never times out.
/// </summary>
/// <param name="innerClient">The model client.</param>
/// <param name="timeout">The longest silence allowed, before the first update or between two.</param>
/// <param name="time">The clock (default <see cref="TimeProvider.System"/>; tests pass a fake one).</param>
public sealed class IdleTimeoutChatClient(IChatClient innerClient, TimeSpan timeout, TimeProvider? time = null) : DelegatingChatClient(innerClient)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var silence = new SilenceTimer(cts, timeout, _time);
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
        using var silence = new SilenceTimer(cts, timeout, _time);
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
            silence.Restart(); // the model is alive
            yield return enumerator.Current;
        }
    }

    private TimeoutException Timeout() => new($"The model sent nothing for {timeout.TotalSeconds:0.###} s.");

    /// <summary>
    /// Cancels <c>cts</c> once no <see cref="Restart"/> came for the timeout. Its timer fires at most once per timeout
    /// and re-arms itself for the time left; moving a timer on every update (<c>CancelAfter</c> per token, a lock on the
    /// runtime's timer queue) was a visible cost with a thousand replies streaming at once.
    /// </summary>
    private sealed class SilenceTimer : IDisposable
    {
        private readonly CancellationTokenSource _cts;
        private readonly TimeSpan _timeout;
        private readonly TimeProvider _time;
        private readonly ITimer _timer;
        private long _lastAlive;

        public SilenceTimer(CancellationTokenSource cts, TimeSpan timeout, TimeProvider time)
        {
            _cts = cts;
            _timeout = timeout;
            _time = time;
            _lastAlive = time.GetTimestamp();
            _timer = time.CreateTimer(static s => ((SilenceTimer)s!).Check(), this, timeout, System.Threading.Timeout.InfiniteTimeSpan);
        }

        /// <summary>Restarts the silence: an update arrived.</summary>
        public void Restart() => Volatile.Write(ref _lastAlive, _time.GetTimestamp());

        private void Check()
        {
            var silent = _time.GetElapsedTime(Volatile.Read(ref _lastAlive));
            try
            {
                if (silent >= _timeout) _cts.Cancel();
                else _timer.Change(_timeout - silent, System.Threading.Timeout.InfiniteTimeSpan);
            }
            catch (ObjectDisposedException)
            {
                // the call ended meanwhile
            }
        }

        public void Dispose() => _timer.Dispose();
    }
}
