using System.Text.Json;
using System.Text.Json.Serialization;
using Parley.Core.Agents;
using Parley.Core.Threads;

namespace Parley.Server.WebChat;

/// <summary>Body of <c>POST /api/v1/threads/web</c> (feather-create-web-thread.md).</summary>
/// <param name="AgentId">The agent (UUID), required.</param>
/// <param name="Metadata">String map returned as given, optional.</param>
/// <param name="Variables">String map that fills the agent's <c>{{placeholders}}</c>, optional.</param>
public sealed record CreateWebThreadRequest(Guid AgentId, Dictionary<string, string>? Metadata, Dictionary<string, string>? Variables);

/// <summary>Response of thread endpoints: <c>{"thread": {...}}</c>.</summary>
/// <param name="Thread">The thread.</param>
/// <param name="ThreadToken">
/// Parley extension, only when a publishable key created the thread: the token the widget sends as
/// <c>X-Thread-Token</c> on every later call for this thread (docs/widget.md). Returned once; absent otherwise.
/// </param>
public sealed record WebThreadResponse(
    WebThread Thread,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ThreadToken = null);

/// <summary>A web chat thread as the seed shapes it (feather-create-web-thread.md, response 200).</summary>
public sealed record WebThread
{
    /// <summary>Thread id (UUID).</summary>
    public required string Id { get; init; }
    /// <summary>Owning organization (UUID).</summary>
    public required string OrganizationId { get; init; }
    /// <summary>The pinned agent version (UUID).</summary>
    public required string AgentVersionId { get; init; }
    /// <summary>Always <c>"web"</c> for web chat threads (the seed's SMS field; a web thread has no phone number).</summary>
    public required string ToPhoneNumber { get; init; }
    /// <summary>Always null for web chat threads.</summary>
    public string? FromPhoneNumber { get; init; }
    /// <summary>Always null for web chat threads.</summary>
    public string? FromPhoneNumberId { get; init; }
    /// <summary>Always null (Parley has no leads).</summary>
    public string? LeadId { get; init; }
    /// <summary>False once closed.</summary>
    public required bool IsActive { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string CreatedAt { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string UpdatedAt { get; init; }
    /// <summary>ISO 8601 UTC, or null while open.</summary>
    public string? ClosedAt { get; init; }
    /// <summary>Why it was closed, or null.</summary>
    public string? ClosedReason { get; init; }
    /// <summary>As given at creation.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>Current variables (creation values plus what the agent captured).</summary>
    public IReadOnlyDictionary<string, string>? Variables { get; init; }
    /// <summary>The agent (UUID).</summary>
    public required string AgentId { get; init; }
    /// <summary>The agent.</summary>
    public required WebAgentDetails AgentDetails { get; init; }
    /// <summary>The pinned version.</summary>
    public required WebAgentVersionDetails AgentVersionDetails { get; init; }
    /// <summary>Parley extension: seconds left in the inactivity window (0 once it ran out).</summary>
    public required long WindowExpiresIn { get; init; }
    /// <summary>Parley extension: <c>agent</c>, or <c>human</c> after a hand-off.</summary>
    public required string Control { get; init; }
    /// <summary>Parley extension: sequence of the thread's last event (a stream resumes after it).</summary>
    public required long LastEventId { get; init; }
}

/// <summary><c>agentDetails</c> (seed: required id, name, description, agentType).</summary>
public sealed record WebAgentDetails(string Id, string Name, string? Description, AgentType AgentType);

/// <summary><c>agentVersionDetails</c> (seed: required id, version, name, mode, smsMaxTokens, smsTemperature, discardInboundSms).</summary>
public sealed record WebAgentVersionDetails(string Id, int Version, string Name, AgentMode Mode, int? SmsMaxTokens, double? SmsTemperature, bool DiscardInboundSms);

/// <summary>Body of <c>POST /api/v1/threads/{threadId}/messages</c> (feather-send-thread-message.md).</summary>
/// <param name="Message">The user's text, required, at least 1 character.</param>
public sealed record SendMessageRequest(string Message);

/// <summary>Response of <c>POST /api/v1/threads/{threadId}/messages</c>.</summary>
/// <param name="Status"><c>queued</c> when a reply run was queued; <c>stored</c> when none was (discardInboundSms, or a human has the thread).</param>
/// <param name="ThreadId">The thread.</param>
/// <param name="MessageId">The stored message.</param>
/// <param name="WindowExpiresIn">Seconds left in the thread's inactivity window, which this message restarted.</param>
public sealed record SendMessageResponse(string Status, string ThreadId, string MessageId, long WindowExpiresIn);

/// <summary>Response of <c>GET /api/v1/threads/{threadId}/messages</c>.</summary>
/// <param name="Messages">Oldest first.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> for the next page; null on the last page.</param>
public sealed record MessagePage(IReadOnlyList<ThreadMessage> Messages, string? NextCursor);

/// <summary>Body of <c>PATCH /api/v1/threads/{threadId}/close</c>.</summary>
/// <param name="Reason">Recorded as <c>closedReason</c>; optional (default <c>closed_by_client</c>), at most 500 characters.</param>
public sealed record CloseThreadRequest(string? Reason);

/// <summary>Response of <c>GET /api/v1/agents</c>.</summary>
public sealed record AgentList(IReadOnlyList<AgentSummary> Agents);

/// <summary>An agent with its current version.</summary>
public sealed record AgentSummary(string Id, string Name, string? Description, AgentType AgentType, WebAgentVersionDetails CurrentVersion);

/// <summary>Source-generated JSON for the web chat dialect: camelCase, enums by name, nulls written.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true, Converters = [typeof(Parley.Core.UtcTimestampJsonConverter)])]
[JsonSerializable(typeof(WebChatError))]
[JsonSerializable(typeof(CreateWebThreadRequest))]
[JsonSerializable(typeof(WebThreadResponse))]
[JsonSerializable(typeof(SendMessageRequest))]
[JsonSerializable(typeof(SendMessageResponse))]
[JsonSerializable(typeof(MessagePage))]
[JsonSerializable(typeof(CloseThreadRequest))]
[JsonSerializable(typeof(AgentList))]
[JsonSerializable(typeof(UsageReport))]
[JsonSerializable(typeof(ThreadMessage))]
public sealed partial class WebChatJsonContext : JsonSerializerContext;
