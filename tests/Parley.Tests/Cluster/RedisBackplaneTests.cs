using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Parley.Backplane.Redis;
using Parley.Core.Diagnostics;
using Parley.Core.Events;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Cluster;

/// <summary>The Redis backplane on a real redis-server: two buses stand for two nodes.</summary>
public sealed class RedisBackplaneTests(RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private readonly List<RedisThreadEventBus> _buses = [];

    public ValueTask InitializeAsync()
    {
        if (redis.SkipReason is { } reason) Assert.Skip(reason);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        foreach (var bus in _buses) bus.Dispose();
        return ValueTask.CompletedTask;
    }

    private RedisThreadEventBus NewNode(ParleyMetrics? metrics = null)
    {
        var bus = new RedisThreadEventBus(Options.Create(new RedisBackplaneOptions { Configuration = redis.Configuration }), NullLogger<RedisThreadEventBus>.Instance,
            metrics ?? NewMetrics());
        _buses.Add(bus);
        return bus;
    }

    private static ParleyMetrics NewMetrics() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());

    private static ThreadEvent Event(Guid thread, long sequence) =>
        new(thread, sequence, ThreadEventTypes.MessageDelta, null, DateTimeOffset.UtcNow, $$"""{"n":{{sequence}}}""");

    private static async Task<List<long>> ReadAsync(ThreadEventSubscription subscription, int count)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var sequences = new List<long>();
        while (sequences.Count < count)
            sequences.Add((await subscription.Reader.ReadAsync(timeout.Token)).Sequence);
        return sequences;
    }

    [Fact]
    public async Task Events_published_on_one_node_reach_every_subscriber_on_every_node_once_in_order()
    {
        var (a, b) = (NewNode(), NewNode());
        var thread = Guid.NewGuid();
        using var onA = a.Subscribe(thread);
        using var onB = b.Subscribe(thread);
        using var unrelated = b.Subscribe(Guid.NewGuid());

        a.Publish([Event(thread, 1), Event(thread, 2)]);
        a.Publish([Event(thread, 3)]);
        Assert.Equal([1L, 2L, 3L], await ReadAsync(onB, 3));
        // B answers after it saw 3: Redis delivers A's own messages back to A before this one, so A's queue holds
        // exactly what it should if A skips its own echoes.
        b.Publish([Event(thread, 4)]);

        Assert.Equal([1L, 2L, 3L, 4L], await ReadAsync(onA, 4));
        Assert.False(onA.Reader.TryRead(out _));
        Assert.Equal([4L], await ReadAsync(onB, 1));
        Assert.False(unrelated.Reader.TryRead(out _));
    }

    [Fact]
    public async Task A_node_counts_the_events_other_nodes_appended_so_its_idle_trim_waits_while_a_remote_reply_streams()
    {
        var metrics = NewMetrics();
        var (a, b) = (NewNode(metrics), NewNode());
        var thread = Guid.NewGuid();
        using var onA = a.Subscribe(thread);
        using var onB = b.Subscribe(thread);

        b.Publish([Event(thread, 1), Event(thread, 2)]);
        Assert.Equal([1L, 2L], await ReadAsync(onA, 2));
        Assert.Equal(2, metrics.EventsSeenTotal);
        // A's own publishes come back from Redis too; they were counted where they were appended, not again here. Once
        // B has 3, Redis has sent A its echo of 3, ahead of 4 on A's connection.
        a.Publish([Event(thread, 3)]);
        Assert.Equal([1L, 2L, 3L], await ReadAsync(onB, 3));
        b.Publish([Event(thread, 4)]);
        Assert.Equal([3L, 4L], await ReadAsync(onA, 2));
        Assert.Equal(3, metrics.EventsSeenTotal);
    }

    [Fact]
    public async Task When_Redis_comes_back_after_an_outage_every_local_subscription_resyncs_from_the_store()
    {
        var node = NewNode();
        using var subscription = node.Subscribe(Guid.NewGuid());

        await redis.StopAsync();
        await redis.StartAsync();

        // The channel completes (without the subscription being disposed): the reader then catches up from the store.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await subscription.Reader.Completion.WaitAsync(timeout.Token);
    }
}
