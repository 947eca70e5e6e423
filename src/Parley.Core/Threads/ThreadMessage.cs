using System.Text.Json.Serialization;

namespace Parley.Core.Threads;

/// <summary>Who sent a message.</summary>
public enum MessageDirection
{
    /// <summary>From the user to the agent.</summary>
    INBOUND,
    /// <summary>From the agent to the user.</summary>
    OUTBOUND,
}

/// <summary>Where a message stands.</summary>
public enum MessageStatus
{
    /// <summary>An inbound message that was stored.</summary>
    RECEIVED,
    /// <summary>An outbound message that is complete.</summary>
    SENT,
    /// <summary>An outbound message whose run failed.</summary>
    FAILED,
}

/// <summary>
/// A message of a thread. Serialized as is (camelCase) in history pages, in <c>message.created</c> events and on the
/// web chat stream, so the three agree. <see cref="Sequence"/> is the id of the event that created it: a client
/// that loaded history resumes the stream with <c>Last-Event-ID</c> = the last message's sequence.
/// </summary>
public sealed record ThreadMessage
{
    /// <summary>Message id (UUID).</summary>
    public required Guid Id { get; init; }

    /// <summary>The thread.</summary>
    public required Guid ThreadId { get; init; }

    /// <summary>Owning organization (not serialized).</summary>
    [JsonIgnore]
    public Guid OrganizationId { get; init; }

    /// <summary>INBOUND or OUTBOUND.</summary>
    public required MessageDirection Direction { get; init; }

    /// <summary>The text.</summary>
    public required string MessageBody { get; init; }

    /// <summary>RECEIVED, SENT or FAILED.</summary>
    public required MessageStatus Status { get; init; }

    /// <summary>The run that produced (outbound) or was started by (inbound) the message, or null.</summary>
    public Guid? RunId { get; init; }

    /// <summary>Suggested answers offered with an outbound message (FLOW choices); empty when none.</summary>
    public IReadOnlyList<string> QuickReplies { get; init; } = [];

    /// <summary>Tokens used to produce an outbound message by a model (null otherwise).</summary>
    public Models.TokenUsage? Usage { get; init; }

    /// <summary>Sequence number of the <c>message.created</c> event.</summary>
    public long Sequence { get; init; }

    /// <summary>When the message was stored (UTC).</summary>
    public required DateTimeOffset CreatedAt { get; init; }
}
