using System.Runtime.CompilerServices;
using Parley.Core.Storage;

namespace Parley.Core.Events;

/// <summary>What <see cref="ThreadEventReader.ReadAsync"/> yields.</summary>
public enum ThreadStreamItemKind
{
    /// <summary>An event of the log, in sequence order.</summary>
    Event,
    /// <summary>Nothing more is ready right now: a good moment to flush the response.</summary>
    Flush,
    /// <summary>The stream was idle for a heartbeat interval: write a keep-alive comment and flush.</summary>
    Heartbeat,
}

/// <summary>One item of a thread stream.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Event">The event when <paramref name="Kind"/> is <see cref="ThreadStreamItemKind.Event"/>, else null.</param>
public readonly record struct ThreadStreamItem(ThreadStreamItemKind Kind, ThreadEvent? Event);

/// <summary>
/// Reads a thread's log as one gap-free, duplicate-free stream: every event after a given sequence, then the live
/// tail. It subscribes to the bus before it replays from the store and drops what it already yielded by sequence
/// (DESIGN.md, "How one message flows"); when a live event skips a sequence, or the subscriber overflowed, it fills
/// the gap from the store. Every dialect's stream is a projection of this one.
/// </summary>
public sealed class ThreadEventReader(IThreadStore store, IThreadEventBus bus, Microsoft.Extensions.Options.IOptions<ThreadEventReaderOptions>? options = null)
{
    private readonly bool _checkStoreWhenIdle = options?.Value.CheckStoreWhenIdle ?? false;

    /// <summary>Events read from the store per query during replay.</summary>
    public const int ReplayPageSize = 512;

    /// <summary>
    /// Yields the thread's events with sequence greater than <paramref name="afterSequence"/>, then live events as they
    /// are appended, with <see cref="ThreadStreamItemKind.Flush"/> whenever nothing more is ready and
    /// <see cref="ThreadStreamItemKind.Heartbeat"/> after <paramref name="heartbeatInterval"/> of silence. Ends only
    /// when <paramref name="cancellationToken"/> is cancelled (or the caller stops enumerating).
    /// </summary>
    public async IAsyncEnumerable<ThreadStreamItem> ReadAsync(
        Guid threadId,
        long afterSequence,
        TimeSpan heartbeatInterval,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var last = afterSequence;
        using var timer = new HeartbeatTimer(cancellationToken);
        while (!cancellationToken.IsCancellationRequested)
        {
            using var subscription = bus.Subscribe(threadId);

            // Replay what the store has; anything appended meanwhile is already queued on the subscription.
            await foreach (var e in ReadStoredAsync(threadId, last, long.MaxValue, cancellationToken))
            {
                last = e.Sequence;
                yield return new ThreadStreamItem(ThreadStreamItemKind.Event, e);
            }
            yield return new ThreadStreamItem(ThreadStreamItemKind.Flush, null);

            var reader = subscription.Reader;
            while (true)
            {
                if (reader.TryRead(out var live))
                {
                    if (live.Sequence <= last) continue;
                    if (live.Sequence > last + 1)
                    {
                        await foreach (var missed in ReadStoredAsync(threadId, last, live.Sequence - 1, cancellationToken))
                        {
                            last = missed.Sequence;
                            yield return new ThreadStreamItem(ThreadStreamItemKind.Event, missed);
                        }
                        if (live.Sequence != last + 1) continue; // the store lags the hint; a later read will catch up
                    }
                    last = live.Sequence;
                    yield return new ThreadStreamItem(ThreadStreamItemKind.Event, live);
                    continue;
                }

                yield return new ThreadStreamItem(ThreadStreamItemKind.Flush, null);

                var (ready, idle) = await WaitAsync(reader, heartbeatInterval, timer, cancellationToken);
                if (idle)
                {
                    // A bus across nodes can lose the last event of a burst (nothing follows it to reveal the gap):
                    // one indexed read per idle heartbeat finds it.
                    if (_checkStoreWhenIdle && (await store.ReadEventsAsync(threadId, last, 1, cancellationToken)).Count > 0) break;
                    yield return new ThreadStreamItem(ThreadStreamItemKind.Heartbeat, null);
                    continue;
                }
                if (!ready) break; // overflowed (or disposed): resubscribe and catch up from the store
            }
        }
    }

    private async IAsyncEnumerable<Events.ThreadEvent> ReadStoredAsync(Guid threadId, long after, long upTo, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (after < upTo)
        {
            var page = await store.ReadEventsAsync(threadId, after, ReplayPageSize, cancellationToken);
            foreach (var e in page)
            {
                if (e.Sequence > upTo) yield break;
                after = e.Sequence;
                yield return e;
            }
            if (page.Count < ReplayPageSize) yield break;
        }
    }

    /// <summary>
    /// Waits for the next live event or for <paramref name="heartbeatInterval"/> of silence. One wait at a time, on the
    /// stream's own token that silence cancels: an earlier version left an uncancellable wait (and a continuation)
    /// registered on the channel at every heartbeat, so idle streams grew for as long as they stayed idle.
    /// </summary>
    private static async ValueTask<(bool Ready, bool Idle)> WaitAsync(
        System.Threading.Channels.ChannelReader<ThreadEvent> reader, TimeSpan heartbeatInterval, HeartbeatTimer timer, CancellationToken cancellationToken)
    {
        var wait = reader.WaitToReadAsync(timer.Token);
        if (wait.IsCompleted && !timer.Token.IsCancellationRequested) return (await wait, false);
        timer.Arm(heartbeatInterval);
        try
        {
            return (await wait, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            timer.Renew();
            return (false, true);
        }
        finally
        {
            timer.Disarm();
        }
    }

    /// <summary>A stream's token for waits: the stream's own, also cancelled after an interval of silence; reused while not fired.</summary>
    private sealed class HeartbeatTimer(CancellationToken stream) : IDisposable
    {
        private CancellationTokenSource _source = CancellationTokenSource.CreateLinkedTokenSource(stream);

        public CancellationToken Token => _source.Token;

        public void Arm(TimeSpan interval) => _source.CancelAfter(interval);

        public void Disarm()
        {
            if (!_source.IsCancellationRequested) _source.CancelAfter(Timeout.InfiniteTimeSpan);
        }

        public void Renew()
        {
            _source.Dispose();
            _source = CancellationTokenSource.CreateLinkedTokenSource(stream);
        }

        public void Dispose() => _source.Dispose();
    }
}

/// <summary>Options of <see cref="ThreadEventReader"/>.</summary>
public sealed class ThreadEventReaderOptions
{
    /// <summary>
    /// When true, a stream idle for a heartbeat interval asks the store whether it missed an event. Off for the
    /// in-process bus (it never loses one); a cross-node backplane such as Redis turns it on.
    /// </summary>
    public bool CheckStoreWhenIdle { get; set; }
}
