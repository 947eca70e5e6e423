using System.Diagnostics;
using System.Runtime.CompilerServices;
using Parley.Core.Storage;

namespace Parley.Core.Events;

/// <summary>What <see cref="ThreadEventReader.ReadAsync(Guid, long, TimeSpan, CancellationToken)"/> yields.</summary>
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
public sealed class ThreadEventReader
{
    private readonly IThreadStore store;
    private readonly IThreadEventBus bus;
    private readonly bool _checkStoreWhenIdle;
    private readonly HeartbeatClock _clock = new();
    private readonly Diagnostics.ParleyMetrics? _metrics;
    private volatile bool _stopping;

    /// <summary>
    /// Creates the reader. With <paramref name="lifetime"/>, streams read with <c>endWhenStopping</c> end as soon as
    /// the host begins to stop: one registration for all of them, instead of a linked cancellation source per stream.
    /// With <paramref name="metrics"/>, the events streams read back from the store (a replay, or a catch-up after
    /// another node appended them) count in <see cref="Diagnostics.ParleyMetrics.EventsSeenTotal"/>.
    /// </summary>
    public ThreadEventReader(IThreadStore store, IThreadEventBus bus, Microsoft.Extensions.Options.IOptions<ThreadEventReaderOptions>? options = null,
        Microsoft.Extensions.Hosting.IHostApplicationLifetime? lifetime = null, Diagnostics.ParleyMetrics? metrics = null)
    {
        this.store = store;
        this.bus = bus;
        _metrics = metrics;
        _checkStoreWhenIdle = options?.Value.CheckStoreWhenIdle ?? false;
        lifetime?.ApplicationStopping.UnsafeRegister(static r => ((ThreadEventReader)r!).EndStreams(), this);
    }

    /// <summary>Events read from the store per query during replay.</summary>
    public const int ReplayPageSize = 512;

    /// <summary>
    /// Yields the thread's events with sequence greater than <paramref name="afterSequence"/>, then live events as they
    /// are appended, with <see cref="ThreadStreamItemKind.Flush"/> whenever nothing more is ready and
    /// <see cref="ThreadStreamItemKind.Heartbeat"/> after <paramref name="heartbeatInterval"/> of silence. Ends only
    /// when <paramref name="cancellationToken"/> is cancelled (or the caller stops enumerating).
    /// </summary>
    public IAsyncEnumerable<ThreadStreamItem> ReadAsync(Guid threadId, long afterSequence, TimeSpan heartbeatInterval, CancellationToken cancellationToken = default) =>
        ReadAsync(threadId, afterSequence, heartbeatInterval, endWhenStopping: false, cancellationToken);

    /// <summary>
    /// As <see cref="ReadAsync(Guid, long, TimeSpan, CancellationToken)"/>; with <paramref name="endWhenStopping"/>, the
    /// enumeration also ends (without an exception) once the host begins to stop, when the reader was given the host's
    /// lifetime, and when <paramref name="cancellationToken"/> is cancelled in its live phase (a cancellation inside a
    /// read of the store still throws <see cref="OperationCanceledException"/>). SSE streams use it: they must not hold
    /// shutdown open, their clients resume with Last-Event-ID, and a client that leaves is the normal end of a stream,
    /// not an error.
    /// </summary>
    public async IAsyncEnumerable<ThreadStreamItem> ReadAsync(
        Guid threadId,
        long afterSequence,
        TimeSpan heartbeatInterval,
        bool endWhenStopping,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var last = afterSequence;
        // Waits on the channel take no token (the channel reuses one waiter for them): the shared clock wakes the
        // stream for its heartbeat, and this registration wakes it when the stream is cancelled.
        var stream = new IdleStream(heartbeatInterval);
        using var cancelled = cancellationToken.UnsafeRegister(static s => ((IdleStream)s!).Wake(), stream);
        _clock.Add(stream);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                using var subscription = bus.Subscribe(threadId);
                stream.Subscription = subscription;

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
                    // EndStreams woke every waiting stream; an SSE stream whose client left ends without an exception
                    // too: thrown, it crossed four awaits to the response's catch, ≈ 10 µs per closed stream.
                    if (endWhenStopping && (_stopping || cancellationToken.IsCancellationRequested)) yield break;
                    cancellationToken.ThrowIfCancellationRequested();
                    if (reader.TryRead(out var live))
                    {
                        if (ReferenceEquals(live, ThreadEventSubscription.WakeUp))
                        {
                            if (!stream.TakeDue()) continue; // woken for cancellation, or a heartbeat already sent
                            // A bus across nodes can lose the last event of a burst (nothing follows it to reveal the
                            // gap): one indexed read per idle heartbeat finds it.
                            if (_checkStoreWhenIdle && (await store.ReadEventsAsync(threadId, last, 1, cancellationToken)).Count > 0) break;
                            yield return new ThreadStreamItem(ThreadStreamItemKind.Heartbeat, null);
                            continue;
                        }
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

                    stream.BeginWait();
                    var ready = await reader.WaitToReadAsync(CancellationToken.None);
                    stream.EndWait();
                    if (!ready) break; // overflowed (or disposed): resubscribe and catch up from the store
                }
            }
        }
        finally
        {
            _clock.Remove(stream);
        }
    }

    /// <summary>Ends the streams read with <c>endWhenStopping</c>: marks the reader stopping and wakes every open stream.</summary>
    private void EndStreams()
    {
        _stopping = true;
        _clock.WakeAll();
    }

    private IAsyncEnumerable<ThreadEvent> ReadStoredAsync(Guid threadId, long after, long upTo, CancellationToken cancellationToken) =>
        ReadStoredAsync(store, threadId, after, upTo, cancellationToken, _metrics);

    /// <summary>
    /// The events of <paramref name="threadId"/> in (<paramref name="after"/>, <paramref name="upTo"/>] from
    /// <paramref name="store"/>, <see cref="ReplayPageSize"/> per query; each page read counts in
    /// <paramref name="metrics"/>' <see cref="Diagnostics.ParleyMetrics.EventsSeenTotal"/> when given.
    /// </summary>
    internal static async IAsyncEnumerable<ThreadEvent> ReadStoredAsync(IThreadStore store, Guid threadId, long after, long upTo,
        [EnumeratorCancellation] CancellationToken cancellationToken, Diagnostics.ParleyMetrics? metrics = null)
    {
        while (after < upTo)
        {
            var page = await store.ReadEventsAsync(threadId, after, ReplayPageSize, cancellationToken);
            metrics?.RecordEventsSeen(page.Count);
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
    /// One reading stream as the heartbeat clock sees it. Replaces a timer, a linked cancellation source and a
    /// cancellable channel wait per stream (and their garbage at every heartbeat) with one small object.
    /// </summary>
    private sealed class IdleStream(TimeSpan heartbeatInterval)
    {
        private int _waiting;
        private int _due;
        private long _idleSince;

        /// <summary>The heartbeat interval in <see cref="Stopwatch"/> ticks.</summary>
        public long Interval { get; } = Math.Max(1, (long)(heartbeatInterval.TotalSeconds * Stopwatch.Frequency));

        /// <summary>Position in the clock's list (owned by the clock, under its lock).</summary>
        public int Index { get; set; } = -1;

        /// <summary>The current subscription, which a wake-up is written to.</summary>
        public volatile ThreadEventSubscription? Subscription;

        /// <summary>The reader is about to wait: silence starts now.</summary>
        public void BeginWait()
        {
            Volatile.Write(ref _idleSince, Stopwatch.GetTimestamp());
            Volatile.Write(ref _waiting, 1);
        }

        /// <summary>The reader woke up.</summary>
        public void EndWait() => Volatile.Write(ref _waiting, 0);

        /// <summary>Called by the clock: wakes the reader once its silence reached the interval.</summary>
        public void WakeIfDue(long now)
        {
            if (Volatile.Read(ref _waiting) == 1 && now - Volatile.Read(ref _idleSince) >= Interval && Interlocked.Exchange(ref _due, 1) == 0
                && !Wake())
                Volatile.Write(ref _due, 0); // no marker went out (channel full or completed): a later tick tries again
        }

        /// <summary>True (once) when the clock found the stream silent for an interval.</summary>
        public bool TakeDue() => Interlocked.Exchange(ref _due, 0) == 1;

        /// <summary>Wakes the reader's wait (for a heartbeat, or because the stream was cancelled).</summary>
        public bool Wake() => Subscription?.Wake() ?? false;
    }

    /// <summary>
    /// One timer for the idle streams of the reader (a process has one reader): every tick it wakes the streams that
    /// were silent for their heartbeat interval. It ticks at a 64th of the shortest interval (10 to 250 ms: 250 ms for
    /// the default 15 s), so a heartbeat goes out between one and ≈ 1.02 intervals of silence; it stops while no stream
    /// is open. The fine tick also keeps the heartbeats spread out: every stream woken by one tick writes a heartbeat at
    /// once, and each write holds one of Kestrel's pooled 4 KiB blocks until the socket has sent it, so the pool grows to
    /// the largest such group and keeps the blocks (10,000 idle streams with 2 s heartbeats: ≈ 3.8 KB each of pooled
    /// blocks at a quarter of the interval, ≈ 1.3 KB at a sixteenth, ≈ 0.5 KB at a 64th; docs/benchmarks.md, idle-streams).
    /// </summary>
    private sealed class HeartbeatClock
    {
        private readonly Lock _lock = new();
        private readonly List<IdleStream> _streams = [];
        private readonly Timer _timer;
        private long _periodMs = long.MaxValue;
        private int _ticking;

        public HeartbeatClock() => _timer = new Timer(static c => ((HeartbeatClock)c!).Tick(), this, Timeout.Infinite, Timeout.Infinite);

        public void Add(IdleStream stream)
        {
            var period = Math.Clamp((long)(stream.Interval * 1000 / Stopwatch.Frequency / 64), 10, 250);
            lock (_lock)
            {
                stream.Index = _streams.Count;
                _streams.Add(stream);
                if (period < _periodMs)
                {
                    _periodMs = period;
                    _timer.Change(period, period);
                }
            }
        }

        public void Remove(IdleStream stream)
        {
            lock (_lock)
            {
                if (stream.Index < 0) return;
                var moved = _streams[^1];
                _streams[stream.Index] = moved;
                moved.Index = stream.Index;
                _streams.RemoveAt(_streams.Count - 1);
                stream.Index = -1;
                if (_streams.Count == 0)
                {
                    _periodMs = long.MaxValue;
                    _timer.Change(Timeout.Infinite, Timeout.Infinite);
                }
            }
        }

        /// <summary>Wakes every stream at once, due or not (the host is stopping).</summary>
        public void WakeAll()
        {
            lock (_lock)
            {
                foreach (var stream in _streams) stream.Wake();
            }
        }

        private void Tick()
        {
            if (Interlocked.Exchange(ref _ticking, 1) == 1) return; // the previous tick is still running
            try
            {
                var now = Stopwatch.GetTimestamp();
                lock (_lock)
                {
                    // A wake-up only writes to a channel whose continuations run asynchronously: cheap under the lock.
                    foreach (var stream in _streams) stream.WakeIfDue(now);
                }
            }
            finally
            {
                Volatile.Write(ref _ticking, 0);
            }
        }
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
