using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Parley.Core.Diagnostics;
using Parley.Core.Events;
using StackExchange.Redis;

namespace Parley.Backplane.Redis;

/// <summary>
/// An <see cref="IThreadEventBus"/> across nodes on Redis pub/sub. Local subscribers get a publish at once, as with
/// the in-process bus; the batch is also published once to the thread's Redis channel
/// (<c>{prefix}:thread:{id}</c>), which a node subscribes to while it has a local subscriber to that thread.
/// One channel per thread means a node receives only the events of threads it streams, and Redis does the routing;
/// a node with many streams holds many channel subscriptions, which Redis handles cheaply.
/// Pub/sub is only a hint: readers fill a sequence gap from the store, and when the connection to Redis comes back
/// after an outage every local subscription is told to resync from the store (<see cref="ThreadEventSubscription.Resync"/>).
/// </summary>
public sealed partial class RedisThreadEventBus : IThreadEventBus, IDisposable
{
    private static readonly TimeSpan SubscribeWait = TimeSpan.FromSeconds(5);

    private readonly ConnectionMultiplexer _redis;
    private readonly ISubscriber _subscriber;
    private readonly string _prefix;
    private readonly string _node = Guid.NewGuid().ToString("N");
    private readonly ILogger<RedisThreadEventBus> _logger;
    private readonly ParleyMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<Guid, ThreadChannel> _threads = new();

    /// <summary>One delegate for every subscription (a method group converted per call allocated one per open stream).</summary>
    private readonly Action<ThreadEventSubscription> _unsubscribe;

    private sealed class ThreadChannel
    {
        public ThreadSubscriberSet Subscribers { get; } = new();
        public required Task<ChannelMessageQueue> Queue { get; init; }
    }

    /// <summary>Connects to Redis (reconnecting by itself later if it is down).</summary>
    /// <exception cref="ArgumentException">The configuration string is invalid.</exception>
    /// <param name="options">Where Redis is and the channels' prefix.</param>
    /// <param name="logger">Logs messages that cannot be read.</param>
    /// <param name="metrics">Counts the events received from other nodes (<see cref="ParleyMetrics.EventsSeenTotal"/>).</param>
    public RedisThreadEventBus(IOptions<RedisBackplaneOptions> options, ILogger<RedisThreadEventBus> logger, ParleyMetrics metrics)
    {
        _logger = logger;
        _metrics = metrics;
        _unsubscribe = Unsubscribe;
        _prefix = options.Value.ChannelPrefix;
        var configuration = ConfigurationOptions.Parse(options.Value.Configuration);
        // Start even when Redis is down (streams then fall back to the store on heartbeats) and keep retrying.
        configuration.AbortOnConnectFail = false;
        configuration.ClientName ??= "parley";
        _redis = ConnectionMultiplexer.Connect(configuration);
        _subscriber = _redis.GetSubscriber();
        _redis.ConnectionFailed += (_, e) => { if (e.ConnectionType == ConnectionType.Subscription) Log.ConnectionLost(_logger, e.FailureType, e.Exception); };
        _redis.ConnectionRestored += (_, e) => { if (e.ConnectionType == ConnectionType.Subscription) ResyncAll(); };
    }

    /// <summary>True while the connection to Redis is up (for health checks).</summary>
    public bool IsConnected => _redis.IsConnected;

    /// <inheritdoc />
    public ThreadEventSubscription Subscribe(Guid threadId)
    {
        var subscription = new ThreadEventSubscription(threadId, _unsubscribe);
        // The set is changed outside _gate, so a large fan-out on one thread (which holds that thread's set) never holds
        // up the node's other threads. A set closed by its last subscriber's leaving is dropped here if it is still in
        // the map, and a fresh channel started.
        Task<ChannelMessageQueue> queue;
        while (true)
        {
            ThreadChannel? channel;
            lock (_gate)
            {
                if (!_threads.TryGetValue(threadId, out channel))
                    _threads[threadId] = channel = new ThreadChannel { Queue = SubscribeRedisAsync(threadId) };
            }
            if (channel.Subscribers.TryAdd(subscription))
            {
                queue = channel.Queue;
                break;
            }
            Forget(threadId, channel);
        }
        // The reader replays from the store right after this returns: wait until Redis confirmed the subscription, so
        // nothing published after the replay can slip past both. When Redis is down, go on: the store covers it.
        try
        {
            if (_redis.IsConnected && !queue.Wait(SubscribeWait)) Log.SubscribeSlow(_logger, threadId);
        }
        catch (AggregateException ex)
        {
            Log.SubscribeFailed(_logger, ex.InnerException ?? ex, threadId);
        }
        return subscription;
    }

    /// <inheritdoc />
    public void Publish(IReadOnlyList<ThreadEvent> events)
    {
        if (events.Count == 0) return;
        var threadId = events[0].ThreadId;
        Deliver(threadId, events);
        var batch = new RedisEventBatch(_node, events.Select(e => new RedisEvent(e.Sequence, e.Type, e.RunId, e.CreatedAt, e.Data)).ToList());
        var payload = JsonSerializer.SerializeToUtf8Bytes(batch, RedisBackplaneJsonContext.Default.RedisEventBatch);
        try
        {
            // Fire and forget: a publish never blocks a thread write. While Redis is unreachable the library queues
            // it (its backlog) and sends it after reconnecting; what is lost is recovered from the store.
            _subscriber.Publish(Channel(threadId), payload, CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            Log.PublishFailed(_logger, ex, threadId);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _redis.Dispose();

    private RedisChannel Channel(Guid threadId) => RedisChannel.Literal($"{_prefix}:thread:{threadId:N}");

    private async Task<ChannelMessageQueue> SubscribeRedisAsync(Guid threadId)
    {
        var queue = await _subscriber.SubscribeAsync(Channel(threadId)).ConfigureAwait(false);
        // OnMessage handles one message at a time, in the order Redis delivered them.
        queue.OnMessage(message => Receive(threadId, message.Message));
        return queue;
    }

    private void Receive(Guid threadId, RedisValue value)
    {
        RedisEventBatch? batch;
        try
        {
            batch = JsonSerializer.Deserialize((byte[])value!, RedisBackplaneJsonContext.Default.RedisEventBatch);
        }
        catch (JsonException ex)
        {
            Log.BadMessage(_logger, ex, threadId);
            return;
        }
        if (batch is null || batch.Node == _node) return;
        _metrics.RecordEventsSeen(batch.Events.Count);
        Deliver(threadId, batch.Events.Select(e => new ThreadEvent(threadId, e.Sequence, e.Type, e.RunId, e.CreatedAt, e.Data)).ToList());
    }

    private void Deliver(Guid threadId, IReadOnlyList<ThreadEvent> events)
    {
        ThreadSubscriberSet subscribers;
        lock (_gate)
        {
            if (!_threads.TryGetValue(threadId, out var channel)) return;
            subscribers = channel.Subscribers;
        }
        subscribers.Offer(events); // a set emptied meanwhile offers to no one
    }

    private void Unsubscribe(ThreadEventSubscription subscription)
    {
        ThreadChannel? channel;
        lock (_gate)
            if (!_threads.TryGetValue(subscription.ThreadId, out channel)) return;
        if (!channel.Subscribers.Remove(subscription)) return; // not the last one
        Forget(subscription.ThreadId, channel);
        channel.Queue.ContinueWith(static t => { if (t.IsCompletedSuccessfully) t.Result.Unsubscribe(CommandFlags.FireAndForget); },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    // Drops a channel whose set its last subscriber closed, if the map still holds it.
    private void Forget(Guid threadId, ThreadChannel channel)
    {
        lock (_gate)
            if (_threads.TryGetValue(threadId, out var current) && ReferenceEquals(current, channel)) _threads.Remove(threadId);
    }

    // Events published while the connection was down never reached this node: every local stream catches up from
    // the store and subscribes again.
    private void ResyncAll()
    {
        List<ThreadChannel> channels;
        lock (_gate) channels = [.. _threads.Values];
        List<ThreadEventSubscription> all = [];
        foreach (var channel in channels) channel.Subscribers.CopyTo(all);
        Log.Resync(_logger, all.Count);
        foreach (var subscription in all) subscription.Resync();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The Redis backplane lost its connection ({FailureType}); streams fall back to the store until it is back")]
        public static partial void ConnectionLost(ILogger logger, ConnectionFailureType failureType, Exception? exception);

        [LoggerMessage(2, LogLevel.Information, "The Redis backplane reconnected; {Count} streams resync from the store")]
        public static partial void Resync(ILogger logger, int count);

        [LoggerMessage(3, LogLevel.Warning, "Subscribing to thread {ThreadId} on Redis is slow; the stream goes on from the store")]
        public static partial void SubscribeSlow(ILogger logger, Guid threadId);

        [LoggerMessage(4, LogLevel.Warning, "Subscribing to thread {ThreadId} on Redis failed; the stream goes on from the store")]
        public static partial void SubscribeFailed(ILogger logger, Exception exception, Guid threadId);

        [LoggerMessage(5, LogLevel.Warning, "Publishing events of thread {ThreadId} to Redis failed; other nodes recover them from the store")]
        public static partial void PublishFailed(ILogger logger, Exception exception, Guid threadId);

        [LoggerMessage(6, LogLevel.Warning, "A Redis message for thread {ThreadId} could not be read")]
        public static partial void BadMessage(ILogger logger, Exception exception, Guid threadId);
    }
}
