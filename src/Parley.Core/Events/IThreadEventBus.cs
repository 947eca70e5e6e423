using System.Threading.Channels;

namespace Parley.Core.Events;

/// <summary>
/// Live fan-out of appended thread events to subscribers. Only a hint: the store is the truth, and readers fill any
/// gap from it (<see cref="ThreadEventReader"/>). The default is in-process; a backplane can replace it.
/// </summary>
public interface IThreadEventBus
{
    /// <summary>Starts receiving the events of <paramref name="threadId"/> published from now on. Dispose to stop.</summary>
    ThreadEventSubscription Subscribe(Guid threadId);

    /// <summary>Delivers <paramref name="events"/> (all of one thread, in sequence order) to the thread's subscribers. Never blocks.</summary>
    void Publish(IReadOnlyList<ThreadEvent> events);
}

/// <summary>
/// One subscriber's bounded queue of live events. A subscriber that falls <see cref="Capacity"/> events behind is
/// marked <see cref="Overflowed"/> and its channel completes; the reader then catches up from the store, so a slow
/// client costs bounded memory and still loses nothing.
/// </summary>
public sealed class ThreadEventSubscription : IDisposable
{
    /// <summary>Events a subscriber may lag behind before it falls back to the store.</summary>
    public const int Capacity = 1024;

    private readonly Channel<ThreadEvent> _channel = Channel.CreateBounded<ThreadEvent>(
        new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = false, FullMode = BoundedChannelFullMode.Wait });
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

    /// <summary>Live events, in publish order.</summary>
    public ChannelReader<ThreadEvent> Reader => _channel.Reader;

    /// <summary>True once the subscriber fell too far behind; the channel is then complete.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>
    /// When set, <see cref="Offer"/> queues only the events this accepts, so a subscriber that waits for one kind of
    /// event (<see cref="ThreadEventWatcher"/>) is not woken by every other. Called on the publishing thread: keep it
    /// cheap and free of side effects. Events offered before it is set are queued unfiltered.
    /// </summary>
    public Func<ThreadEvent, bool>? Accepts { get; set; }

    /// <summary>Offers an event; on overflow marks the subscription and completes the channel.</summary>
    public void Offer(ThreadEvent e)
    {
        if (Accepts is { } accepts && !accepts(e)) return;
        if (_channel.Writer.TryWrite(e)) return;
        Overflowed = true;
        _channel.Writer.TryComplete();
    }

    /// <summary>
    /// The item <see cref="Wake"/> writes: never published, and skipped by <see cref="ThreadEventReader"/> (the only
    /// caller of <see cref="Wake"/>), so other readers of <see cref="Reader"/> never see it.
    /// </summary>
    internal static readonly ThreadEvent WakeUp = new(Guid.Empty, -1, "", null, default, "");

    /// <summary>
    /// Wakes a reader waiting on <see cref="Reader"/> without an event (for a heartbeat or a cancellation), so its
    /// waits need no cancellation token. Does nothing when the channel is full (the reader is awake then) or complete;
    /// returns false then.
    /// </summary>
    internal bool Wake() => _channel.Writer.TryWrite(WakeUp);

    /// <summary>
    /// Completes the channel without unsubscribing, so the reader catches up from the store and subscribes again. A
    /// backplane calls it when it may have missed events (for example after reconnecting to its broker): pub/sub is a
    /// hint, the store is the truth.
    /// </summary>
    public void Resync() => _channel.Writer.TryComplete();

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _channel.Writer.TryComplete();
        _unsubscribe(this);
    }
}
