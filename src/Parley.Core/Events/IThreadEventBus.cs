using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using System.Threading.Tasks.Sources;

namespace Parley.Core.Events;

/// <summary>
/// Live fan-out of appended thread events to subscribers. Only a hint: the store is the truth, and readers fill any
/// gap from it (<see cref="ThreadEventReader"/>). The default is in-process; a backplane can replace it.
/// </summary>
public interface IThreadEventBus
{
    /// <summary>Starts receiving the events of <paramref name="threadId"/> published from now on. Dispose to stop.</summary>
    ThreadEventSubscription Subscribe(Guid threadId);

    /// <summary>
    /// Delivers <paramref name="events"/> (all of one thread, in sequence order) to the thread's subscribers. Never waits
    /// for a subscriber (a full queue overflows instead); it may wait for a publish of the same thread on another thread.
    /// </summary>
    void Publish(IReadOnlyList<ThreadEvent> events);
}

/// <summary>
/// One subscriber's bounded queue of live events. A subscriber that falls <see cref="Capacity"/> events behind is
/// marked <see cref="Overflowed"/> and its queue completes; the reader then catches up from the store, so a slow
/// client costs bounded memory and still loses nothing.
/// </summary>
/// <remarks>
/// The queue is a <see cref="ChannelReader{T}"/> of its own rather than a bounded <see cref="Channel{T}"/>: every open
/// stream holds one for as long as it is open, mostly idle, and a bounded channel with its reader, writer, deque and
/// four reusable wait operations took ≈ 0.65 KB per stream where this takes ≈ 0.15 KB (docs/benchmarks.md,
/// idle-streams). Same policy: one reader, many writers, a bound, and a full queue completes instead of blocking.
/// </remarks>
public sealed class ThreadEventSubscription : IDisposable
{
    /// <summary>Events a subscriber may lag behind before it falls back to the store.</summary>
    public const int Capacity = 1024;

    private readonly SubscriptionQueue _queue = new();
    private readonly Action<ThreadEventSubscription> _unsubscribe;
    private int _disposed;

    /// <summary>Creates a subscription to <paramref name="threadId"/>; <paramref name="unsubscribe"/> runs once on dispose.</summary>
    public ThreadEventSubscription(Guid threadId, Action<ThreadEventSubscription> unsubscribe)
    {
        ThreadId = threadId;
        _unsubscribe = unsubscribe;
    }

    /// <summary>The thread.</summary>
    public Guid ThreadId { get; }

    /// <summary>Live events, in publish order. One reader at a time.</summary>
    public ChannelReader<ThreadEvent> Reader => _queue;

    /// <summary>Where <see cref="ThreadSubscriberSet"/> keeps this subscription (−1 while in none), so removing it is O(1).</summary>
    internal int SlotInSet { get; set; } = -1;

    /// <summary>True once the subscriber fell too far behind; the queue is then complete.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>
    /// When set, <see cref="Offer"/> queues only the events this accepts, so a subscriber that waits for one kind of
    /// event (<see cref="ThreadEventWatcher"/>) is not woken by every other. Called on the publishing thread: keep it
    /// cheap and free of side effects (it runs under the bus's lock for the thread: it must not subscribe or dispose a
    /// subscription). Events offered before it is set are queued unfiltered.
    /// </summary>
    public Func<ThreadEvent, bool>? Accepts { get; set; }

    /// <summary>Offers an event; on overflow marks the subscription and completes the queue.</summary>
    public void Offer(ThreadEvent e)
    {
        if (Accepts is { } accepts && !accepts(e)) return;
        if (_queue.TryWrite(e)) return;
        Overflowed = true;
        _queue.TryComplete();
    }

    /// <summary>
    /// The item <see cref="Wake"/> makes the reader read: never published (sequence −1), and skipped by
    /// <see cref="ThreadEventReader"/> and <see cref="ThreadEventWatcher"/> (the only callers of <see cref="Wake"/>), so
    /// other readers of <see cref="Reader"/> never see it.
    /// </summary>
    internal static readonly ThreadEvent WakeUp = new(Guid.Empty, -1, "", null, default, "");

    /// <summary>
    /// Wakes a reader waiting on <see cref="Reader"/> without an event (for a heartbeat, a cancellation or a periodic
    /// store check), so its waits need no cancellation token: the reader then reads <see cref="WakeUp"/> once, after
    /// the events queued before it. Returns false, doing nothing, when the queue is full (the reader is awake then) or
    /// complete.
    /// </summary>
    internal bool Wake() => _queue.TryWrite(WakeUp);

    /// <summary>
    /// Completes the queue without unsubscribing, so the reader catches up from the store and subscribes again. A
    /// backplane calls it when it may have missed events (for example after reconnecting to its broker): pub/sub is a
    /// hint, the store is the truth.
    /// </summary>
    public void Resync() => _queue.TryComplete();

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _queue.TryComplete();
        _unsubscribe(this);
    }

    /// <summary>
    /// A bounded FIFO of events for one reader and many writers: a ring buffer allocated at the first item and grown
    /// up to <see cref="Capacity"/>, and one reusable wait. Waits without a cancellation token (the reader's) allocate
    /// nothing; a cancellable wait (tests, other readers) gets a task of its own. Continuations always run on the
    /// thread pool, never inside a writer (a publisher or the heartbeat clock holding its lock).
    /// </summary>
    private sealed class SubscriptionQueue : ChannelReader<ThreadEvent>, IValueTaskSource<bool>
    {
        private ThreadEvent[]? _items;
        private int _head;
        private int _count;
        private bool _completed;
        private bool _waiting; // the reusable wait below is handed out and not yet completed
        private TaskCompletionSource<bool>? _cancellableWait;
        private TaskCompletionSource? _completion;
        private ManualResetValueTaskSourceCore<bool> _wait = new() { RunContinuationsAsynchronously = true };

        // Locks on itself: the queue is reachable only through ThreadEventSubscription.Reader, and a private lock
        // object would cost another 24–40 bytes per open stream.
        private object Sync => this;

        public bool TryWrite(ThreadEvent e)
        {
            lock (Sync)
            {
                if (_completed || _count == Capacity) return false;
                if (_items is null) _items = new ThreadEvent[4];
                else if (_count == _items.Length)
                {
                    var grown = new ThreadEvent[Math.Min(Capacity, _items.Length * 2)];
                    for (var i = 0; i < _count; i++) grown[i] = _items[(_head + i) % _items.Length];
                    _items = grown;
                    _head = 0;
                }
                _items[(_head + _count) % _items.Length] = e;
                _count++;
                Signal(true);
                return true;
            }
        }

        public void TryComplete()
        {
            lock (Sync)
            {
                if (_completed) return;
                _completed = true;
                if (_count == 0)
                {
                    Signal(false);
                    _completion?.TrySetResult();
                }
            }
        }

        /// <inheritdoc />
        public override bool TryRead([MaybeNullWhen(false)] out ThreadEvent item)
        {
            lock (Sync)
            {
                if (_count == 0)
                {
                    item = null;
                    return false;
                }
                item = _items![_head];
                _items[_head] = null!;
                _head = (_head + 1) % _items.Length;
                if (--_count == 0 && _completed) _completion?.TrySetResult();
                return true;
            }
        }

        /// <inheritdoc />
        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
        {
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
            lock (Sync)
            {
                if (_count > 0) return new ValueTask<bool>(true);
                if (_completed) return new ValueTask<bool>(false);
                if (_waiting || _cancellableWait is not null)
                    throw new InvalidOperationException("A subscription has one reader: another wait is still pending.");
                if (!cancellationToken.CanBeCanceled)
                {
                    _waiting = true;
                    _wait.Reset();
                    return new ValueTask<bool>(this, _wait.Version);
                }
                var wait = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                _cancellableWait = wait;
                var registration = cancellationToken.UnsafeRegister(static (state, token) =>
                {
                    var (queue, wait) = ((SubscriptionQueue, TaskCompletionSource<bool>))state!;
                    lock (queue.Sync)
                    {
                        if (ReferenceEquals(queue._cancellableWait, wait)) queue._cancellableWait = null;
                    }
                    wait.TrySetCanceled(token);
                }, (this, wait));
                return new ValueTask<bool>(WaitAsync(wait.Task, registration));
            }
        }

        private static async Task<bool> WaitAsync(Task<bool> wait, CancellationTokenRegistration registration)
        {
            await using (registration) return await wait.ConfigureAwait(false);
        }

        /// <inheritdoc />
        public override Task Completion
        {
            get
            {
                lock (Sync)
                {
                    if (_completion is null)
                    {
                        _completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        if (_completed && _count == 0) _completion.TrySetResult();
                    }
                    return _completion.Task;
                }
            }
        }

        /// <inheritdoc />
        public override bool CanCount => true;

        /// <inheritdoc />
        public override int Count
        {
            get
            {
                lock (Sync) return _count;
            }
        }

        /// <summary>Completes the pending wait, if any (under the lock).</summary>
        private void Signal(bool result)
        {
            if (_waiting)
            {
                _waiting = false;
                _wait.SetResult(result);
            }
            if (_cancellableWait is { } wait)
            {
                _cancellableWait = null;
                wait.TrySetResult(result);
            }
        }

        bool IValueTaskSource<bool>.GetResult(short token) => _wait.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _wait.GetStatus(token);

        void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _wait.OnCompleted(continuation, state, token, flags);
    }
}
