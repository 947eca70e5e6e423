using System.Text.Json.Serialization;

namespace Parley.Backplane.Redis;

/// <summary>One pub/sub message: the events one committed write appended to a thread, from one node.</summary>
/// <param name="Node">The publishing bus (its own messages come back to it and are skipped: it delivered them locally).</param>
/// <param name="Events">The events, in sequence order.</param>
internal sealed record RedisEventBatch(string Node, IReadOnlyList<RedisEvent> Events);

/// <summary>One event on the wire.</summary>
internal sealed record RedisEvent(long Sequence, string Type, Guid? RunId, DateTimeOffset CreatedAt, string Data);

[JsonSerializable(typeof(RedisEventBatch))]
internal sealed partial class RedisBackplaneJsonContext : JsonSerializerContext;
