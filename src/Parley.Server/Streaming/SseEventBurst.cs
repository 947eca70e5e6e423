using System.Buffers;
using System.Net.ServerSentEvents;
using Parley.Core.Events;

namespace Parley.Server.Streaming;

/// <summary>
/// Writes a stream's log items (<see cref="ThreadEventReader"/>) as Server-Sent Events, handing
/// <see cref="SseFormatter"/> one burst of events at a time: the SSE events of the log's events, up to the next item
/// that is not an event (a flush or a heartbeat), which stays the log enumerator's current item and is handled next.
/// The formatter runs only for a burst and lets go of its state after it, so an idle stream holds none of it: one small
/// object per stream instead of an iterator that the formatter awaits, with its buffers, for the life of the stream
/// (docs/benchmarks.md, idle-streams). A dialect says which SSE events a log event becomes and when the stream ends.
/// </summary>
/// <typeparam name="T">The data of the dialect's <see cref="SseItem{T}"/>.</typeparam>
/// <param name="source">The stream's log items; <see cref="WriteAsync"/> disposes it.</param>
public abstract class SseEventBurst<T>(IAsyncEnumerator<ThreadStreamItem> source) : IAsyncEnumerable<SseItem<T>>, IAsyncEnumerator<SseItem<T>>
{
    private bool _first;
    private bool _stopped;

    /// <summary>The stream's log items; its current item is the log event being sent.</summary>
    protected IAsyncEnumerator<ThreadStreamItem> Source => source;

    /// <summary>True once the stream must end (set by <see cref="AcceptAsync"/> or <see cref="NextWithinEvent"/>).</summary>
    protected bool Ended { get; set; }

    /// <inheritdoc />
    public abstract SseItem<T> Current { get; }

    /// <summary>
    /// Writes the stream to <paramref name="output"/> until the log or the stream ends: events in bursts, each
    /// <paramref name="heartbeat"/> and flush at once, and a last flush at the end. With <paramref name="endAtFlush"/>
    /// the stream ends at the first flush (everything that was stored has been sent). Disposes the log enumerator.
    /// </summary>
    /// <remarks>
    /// When <paramref name="cancellationToken"/> is cancelled (the client left) it usually returns normally, without the
    /// last flush: the log ended quietly (<see cref="ThreadEventReader"/> with <c>endWhenStopping</c>).
    /// </remarks>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled during a write or a read of the store.</exception>
    public async Task WriteAsync(Stream output, ReadOnlyMemory<byte> heartbeat, Action<SseItem<T>, IBufferWriter<byte>> formatData,
        bool endAtFlush, CancellationToken cancellationToken)
    {
        try
        {
            // A burst stops at the item after its last event without moving on: that item is handled next.
            while (!Ended && (TakeStop() || await source.MoveNextAsync()))
            {
                switch (source.Current.Kind)
                {
                    case ThreadStreamItemKind.Heartbeat:
                        await output.WriteAsync(heartbeat, cancellationToken);
                        await output.FlushAsync(cancellationToken);
                        break;
                    case ThreadStreamItemKind.Flush:
                        await output.FlushAsync(cancellationToken);
                        if (endAtFlush) return;
                        break;
                    case ThreadStreamItemKind.Event when await StartsAsync(source.Current.Event!):
                        await SseFormatter.WriteAsync(this, output, formatData, cancellationToken);
                        break;
                }
            }
            if (!cancellationToken.IsCancellationRequested) await output.FlushAsync(cancellationToken); // else the client left
        }
        finally
        {
            await source.DisposeAsync();
        }
    }

    /// <summary>
    /// Takes <paramref name="e"/> (the log's current item) as the event being sent: true, with its first SSE event as
    /// <see cref="Current"/>, when the stream sends any of it. Sets <see cref="Ended"/> when the stream ends with it.
    /// </summary>
    protected abstract ValueTask<bool> AcceptAsync(ThreadEvent e);

    /// <summary>Moves to the next SSE event of the current log event (false when none is left; then may set <see cref="Ended"/>).</summary>
    protected virtual bool NextWithinEvent() => false;

    /// <summary>Called between bursts, to let go of what the last burst held.</summary>
    protected virtual void OnIdle()
    {
    }

    private bool TakeStop()
    {
        if (!_stopped) return false;
        _stopped = false;
        return true;
    }

    private async ValueTask<bool> StartsAsync(ThreadEvent e)
    {
        _first = await AcceptAsync(e);
        if (!_first) OnIdle();
        return _first;
    }

    /// <inheritdoc />
    public IAsyncEnumerator<SseItem<T>> GetAsyncEnumerator(CancellationToken cancellationToken = default) => this;

    /// <inheritdoc />
    public ValueTask<bool> MoveNextAsync()
    {
        if (_first)
        {
            _first = false;
            return new ValueTask<bool>(true);
        }
        if (NextWithinEvent()) return new ValueTask<bool>(true);
        return Ended ? new ValueTask<bool>(false) : MoveToNextEventAsync();
    }

    private async ValueTask<bool> MoveToNextEventAsync()
    {
        while (await source.MoveNextAsync())
        {
            var item = source.Current;
            if (item.Kind != ThreadStreamItemKind.Event)
            {
                _stopped = true;
                OnIdle();
                return false;
            }
            if (await AcceptAsync(item.Event!)) return true;
            if (Ended) return false;
        }
        Ended = true;
        return false;
    }

    /// <summary>Ends a burst (the formatter disposes its enumerator after each one); the log enumerator stays open.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
