using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Parley.Core.Events;

/// <summary>The default <see cref="IThreadEventBus"/>: fan-out inside one process.</summary>
public sealed class InProcessThreadEventBus : IThreadEventBus
{
    private readonly ConcurrentDictionary<Guid, ImmutableArray<ThreadEventSubscription>> _subscribers = new();

    /// <summary>One delegate for every subscription (each open stream held one of its own).</summary>
    private readonly Action<ThreadEventSubscription> _unsubscribe;

    /// <summary>Creates an empty bus.</summary>
    public InProcessThreadEventBus() => _unsubscribe = Unsubscribe;

    /// <inheritdoc />
    public ThreadEventSubscription Subscribe(Guid threadId)
    {
        var subscription = new ThreadEventSubscription(threadId, _unsubscribe);
        _subscribers.AddOrUpdate(threadId, [subscription], (_, list) => list.Add(subscription));
        return subscription;
    }

    /// <inheritdoc />
    public void Publish(IReadOnlyList<ThreadEvent> events)
    {
        if (events.Count == 0 || !_subscribers.TryGetValue(events[0].ThreadId, out var subscribers)) return;
        foreach (var subscriber in subscribers)
            for (var i = 0; i < events.Count; i++) // not foreach: an interface's enumerator is an allocation per publish
                subscriber.Offer(events[i]);
    }

    /// <summary>Number of threads with at least one subscriber (for metrics and tests).</summary>
    public int SubscribedThreadCount => _subscribers.Count;

    private void Unsubscribe(ThreadEventSubscription subscription)
    {
        while (_subscribers.TryGetValue(subscription.ThreadId, out var list))
        {
            var updated = list.Remove(subscription);
            var done = updated.IsEmpty
                ? _subscribers.TryRemove(new KeyValuePair<Guid, ImmutableArray<ThreadEventSubscription>>(subscription.ThreadId, list))
                : _subscribers.TryUpdate(subscription.ThreadId, updated, list);
            if (done) return;
        }
    }
}
