using System.Collections.Concurrent;

namespace Parley.Core.Events;

/// <summary>The default <see cref="IThreadEventBus"/>: fan-out inside one process.</summary>
public sealed class InProcessThreadEventBus : IThreadEventBus
{
    private readonly ConcurrentDictionary<Guid, ThreadSubscriberSet> _subscribers = new();

    /// <summary>One delegate for every subscription (each open stream held one of its own).</summary>
    private readonly Action<ThreadEventSubscription> _unsubscribe;

    /// <summary>Creates an empty bus.</summary>
    public InProcessThreadEventBus() => _unsubscribe = Unsubscribe;

    /// <inheritdoc />
    public ThreadEventSubscription Subscribe(Guid threadId)
    {
        var subscription = new ThreadEventSubscription(threadId, _unsubscribe);
        // A set found closed lost its last subscriber a moment ago and is on its way out of the dictionary: start anew.
        while (!_subscribers.GetOrAdd(threadId, static _ => new ThreadSubscriberSet()).TryAdd(subscription))
            Thread.Yield();
        return subscription;
    }

    /// <inheritdoc />
    public void Publish(IReadOnlyList<ThreadEvent> events)
    {
        if (events.Count > 0 && _subscribers.TryGetValue(events[0].ThreadId, out var subscribers)) subscribers.Offer(events);
    }

    /// <summary>Number of threads with at least one subscriber (for metrics and tests).</summary>
    public int SubscribedThreadCount => _subscribers.Count;

    private void Unsubscribe(ThreadEventSubscription subscription)
    {
        if (_subscribers.TryGetValue(subscription.ThreadId, out var set) && set.Remove(subscription))
            _subscribers.TryRemove(new KeyValuePair<Guid, ThreadSubscriberSet>(subscription.ThreadId, set));
    }
}
