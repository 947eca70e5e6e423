namespace Parley.Core.Events;

/// <summary>
/// The live subscribers of one thread, for a bus's fan-out: adding and removing one costs O(1) time and no allocation
/// beyond an occasional doubling of the array, and a publish offers events to each subscriber under the set's lock
/// without copying the set. A copy-on-write array, which this replaced, made n subscribers of one thread cost O(n²)
/// bytes to open and to close: ≈ 400 MB of garbage each way for 10,000 viewers of one thread (docs/benchmarks.md,
/// fan-out). Thread-safe.
/// </summary>
/// <remarks>
/// A set that has lost its last subscriber is closed for good (<see cref="TryAdd"/> returns false), so a bus that drops
/// empty sets from its dictionary without a lock of its own can tell a new subscriber to start a fresh set.
/// </remarks>
public sealed class ThreadSubscriberSet
{
    private ThreadEventSubscription[] _subscribers = new ThreadEventSubscription[2];
    private int _count;
    private bool _closed;

    private readonly Lock _sync = new();

    /// <summary>Adds <paramref name="subscription"/>; false, adding nothing, when the set was closed by its last removal.</summary>
    /// <exception cref="InvalidOperationException">The subscription is already in a set.</exception>
    public bool TryAdd(ThreadEventSubscription subscription)
    {
        lock (_sync)
        {
            if (_closed) return false;
            if (subscription.SlotInSet >= 0) throw new InvalidOperationException("The subscription is already in a subscriber set.");
            if (_count == _subscribers.Length) Array.Resize(ref _subscribers, _count * 2);
            _subscribers[_count] = subscription;
            subscription.SlotInSet = _count++;
            return true;
        }
    }

    /// <summary>
    /// Removes <paramref name="subscription"/>; true when that emptied the set, which is then closed and the caller drops
    /// it. False, removing nothing, when the subscription is not in this set.
    /// </summary>
    public bool Remove(ThreadEventSubscription subscription)
    {
        lock (_sync)
        {
            var slot = subscription.SlotInSet;
            if (slot < 0 || slot >= _count || !ReferenceEquals(_subscribers[slot], subscription)) return false;
            // The last subscriber takes the freed slot: order among subscribers means nothing.
            var last = _subscribers[--_count];
            _subscribers[slot] = last;
            last.SlotInSet = slot;
            _subscribers[_count] = null!;
            subscription.SlotInSet = -1;
            if (_count < _subscribers.Length / 4 && _subscribers.Length > 8) Array.Resize(ref _subscribers, _subscribers.Length / 2);
            return _closed = _count == 0;
        }
    }

    /// <summary>
    /// Offers <paramref name="events"/> (one thread's, in sequence order) to every subscriber, in that order, under the
    /// set's lock: a publish of the same thread waits for it, and a subscription's <see cref="ThreadEventSubscription.Accepts"/>
    /// filter, called here, must not subscribe or dispose a subscription (the lock is re-entrant, and a removal during
    /// the loop would move a subscriber past it).
    /// </summary>
    public void Offer(IReadOnlyList<ThreadEvent> events)
    {
        lock (_sync)
        {
            for (var s = 0; s < _count; s++)
            {
                var subscriber = _subscribers[s];
                for (var i = 0; i < events.Count; i++) // not foreach: an interface's enumerator is an allocation per publish
                    subscriber.Offer(events[i]);
            }
        }
    }

    /// <summary>Adds every subscriber now in the set to <paramref name="into"/>.</summary>
    public void CopyTo(List<ThreadEventSubscription> into)
    {
        lock (_sync)
            for (var s = 0; s < _count; s++) into.Add(_subscribers[s]);
    }
}
