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
        while (true)
        {
            var set = _subscribers.GetOrAdd(threadId, static _ => new ThreadSubscriberSet());
            if (set.TryAdd(subscription)) return subscription;
            // Closed: its last subscriber left a moment ago and is about to drop it. Drop it here (a closed set stays
            // closed, so whoever comes first does it), then start a fresh one.
            _subscribers.TryRemove(new KeyValuePair<Guid, ThreadSubscriberSet>(threadId, set));
        }
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
