using Parley.Core.Events;

namespace Parley.Tests.Events;

/// <summary>
/// A live subscription's queue (<see cref="ThreadEventSubscription"/>): what the in-process bus hands every open
/// stream. Order, waking a waiting reader, the bound (overflow falls back to the store) and the end of a subscription.
/// </summary>
public sealed class ThreadEventSubscriptionTests
{
    private static readonly Guid Thread = Guid.NewGuid();

    private static ThreadEvent Event(long sequence) =>
        new(Thread, sequence, ThreadEventTypes.MessageDelta, null, DateTimeOffset.UtcNow, $$"""{"n":{{sequence}}}""");

    private static List<long> Drain(ThreadEventSubscription subscription)
    {
        var sequences = new List<long>();
        while (subscription.Reader.TryRead(out var e)) sequences.Add(e.Sequence);
        return sequences;
    }

    [Fact]
    public void Published_events_are_read_once_in_publish_order()
    {
        var bus = new InProcessThreadEventBus();
        using var subscription = bus.Subscribe(Thread);

        bus.Publish([Event(1), Event(2), Event(3)]);
        bus.Publish([Event(4)]);
        for (var i = 5; i <= 40; i++) bus.Publish([Event(i)]); // past the queue's first sizes

        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), Drain(subscription));
        Assert.Empty(Drain(subscription));
    }

    [Fact]
    public async Task A_waiting_reader_wakes_when_an_event_is_published()
    {
        var bus = new InProcessThreadEventBus();
        using var subscription = bus.Subscribe(Thread);

        for (var round = 1; round <= 3; round++)
        {
            var wait = subscription.Reader.WaitToReadAsync().AsTask();
            Assert.False(wait.IsCompleted);
            bus.Publish([Event(round)]);
            Assert.True(await wait.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal([(long)round], Drain(subscription));
        }
    }

    [Fact]
    public async Task A_cancelled_wait_ends_with_its_token_and_the_next_wait_still_gets_events()
    {
        var bus = new InProcessThreadEventBus();
        using var subscription = bus.Subscribe(Thread);
        using var cancel = new CancellationTokenSource();

        var cancelled = subscription.Reader.WaitToReadAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        var next = subscription.Reader.ReadAsync(TestContext.Current.CancellationToken).AsTask();
        bus.Publish([Event(7)]);
        Assert.Equal(7, (await next.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)).Sequence);
    }

    [Fact]
    public async Task A_subscriber_that_falls_a_capacity_behind_is_marked_overflowed_and_ends_after_what_it_holds()
    {
        var bus = new InProcessThreadEventBus();
        using var subscription = bus.Subscribe(Thread);

        bus.Publish(Enumerable.Range(1, ThreadEventSubscription.Capacity + 5).Select(i => Event(i)).ToList());

        Assert.True(subscription.Overflowed);
        Assert.False(subscription.Reader.Completion.IsCompleted); // it still holds the first Capacity events
        Assert.Equal(Enumerable.Range(1, ThreadEventSubscription.Capacity).Select(i => (long)i), Drain(subscription));
        Assert.False(await subscription.Reader.WaitToReadAsync(TestContext.Current.CancellationToken));
        await subscription.Reader.Completion.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Disposing_a_subscription_wakes_its_reader_with_the_end_and_stops_delivery()
    {
        var bus = new InProcessThreadEventBus();
        var subscription = bus.Subscribe(Thread);
        var wait = subscription.Reader.WaitToReadAsync().AsTask();

        subscription.Dispose();

        Assert.False(await wait.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        bus.Publish([Event(1)]);
        Assert.Empty(Drain(subscription));
        Assert.Equal(0, bus.SubscribedThreadCount);
    }
}
