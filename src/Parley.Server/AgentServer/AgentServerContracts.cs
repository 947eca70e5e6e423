using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Server.AgentServer;

/// <summary>The dialect's error body (seed langgraph-join-thread-stream.md, <c>ErrorResponse</c>): <c>{"detail": "..."}</c>.</summary>
/// <param name="Detail">Human-readable message naming the field or resource.</param>
public sealed record AgentServerError(string Detail);

/// <summary>An assistant: a Parley agent as the agent-server API shapes it (reference capture 05).</summary>
public sealed record AssistantResponse
{
    /// <summary>The agent id (UUID).</summary>
    public required string AssistantId { get; init; }
    /// <summary>The agent's name: what <c>assistant_id</c> may also name in a run.</summary>
    public required string GraphId { get; init; }
    /// <summary>Always empty: Parley agents are configured by their files.</summary>
    public Dictionary<string, string> Config { get; init; } = [];
    /// <summary>Always empty.</summary>
    public Dictionary<string, string> Context { get; init; } = [];
    /// <summary>ISO 8601 UTC.</summary>
    public required string CreatedAt { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string UpdatedAt { get; init; }
    /// <summary><c>{"mode": "FLOW"|"PROMPT", "agent_type": ...}</c>.</summary>
    public required Dictionary<string, string> Metadata { get; init; }
    /// <summary>The current version number of the agent.</summary>
    public required int Version { get; init; }
    /// <summary>The agent's name.</summary>
    public required string Name { get; init; }
    /// <summary>The agent's description, or null.</summary>
    public string? Description { get; init; }
}

/// <summary>A thread (reference capture 06).</summary>
public sealed record ThreadResponse
{
    /// <summary>Thread id (UUID).</summary>
    public required string ThreadId { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string CreatedAt { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string UpdatedAt { get; init; }
    /// <summary>Metadata as given (string values).</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    /// <summary><c>idle</c>, <c>busy</c>, <c>interrupted</c> or <c>error</c>.</summary>
    public required string Status { get; init; }
    /// <summary>Always empty.</summary>
    public Dictionary<string, string> Config { get; init; } = [];
}

/// <summary>A run (reference capture 15).</summary>
public sealed record RunResponse
{
    /// <summary>Run id (UUID).</summary>
    public required string RunId { get; init; }
    /// <summary>The thread.</summary>
    public required string ThreadId { get; init; }
    /// <summary>The agent that answers (UUID).</summary>
    public required string? AssistantId { get; init; }
    /// <summary><c>pending</c>, <c>running</c>, <c>success</c>, <c>error</c>, <c>timeout</c> or <c>interrupted</c>.</summary>
    public required string Status { get; init; }
    /// <summary>Always empty (Parley does not store run metadata).</summary>
    public Dictionary<string, string> Metadata { get; init; } = [];
    /// <summary>The strategy the run was created with (only in the create response; null when read later).</summary>
    public string? MultitaskStrategy { get; init; }
    /// <summary>ISO 8601 UTC.</summary>
    public required string CreatedAt { get; init; }
    /// <summary>ISO 8601 UTC: when the run last changed.</summary>
    public required string UpdatedAt { get; init; }
}

/// <summary>A message in LangChain's serialized shape (reference capture 13): <c>type</c> human or ai.</summary>
public sealed record LangChainMessage
{
    /// <summary>The text.</summary>
    public required string Content { get; init; }
    /// <summary>Always empty.</summary>
    public Dictionary<string, string> AdditionalKwargs { get; init; } = [];
    /// <summary>Always empty.</summary>
    public Dictionary<string, string> ResponseMetadata { get; init; } = [];
    /// <summary>AI messages: always empty.</summary>
    public List<string>? ToolCallChunks { get; init; }
    /// <summary>AI messages: always empty (tool calls are <c>custom</c> events).</summary>
    public List<string>? ToolCalls { get; init; }
    /// <summary>The Parley message id (UUID); a streamed reply's chunks carry the id of the message they become.</summary>
    public required string Id { get; init; }
    /// <summary>AI messages: always empty.</summary>
    public List<string>? InvalidToolCalls { get; init; }
    /// <summary><c>human</c> or <c>ai</c>.</summary>
    public required string Type { get; init; }

    /// <summary>A human message.</summary>
    public static LangChainMessage Human(Guid id, string content) => new() { Id = id.ToString("D"), Content = content, Type = "human" };

    /// <summary>An AI message (or chunk).</summary>
    public static LangChainMessage Ai(Guid id, string content) => new()
    {
        Id = id.ToString("D"), Content = content, Type = "ai", ToolCallChunks = [], ToolCalls = [], InvalidToolCalls = [],
    };
}

/// <summary>The thread's values: <c>{"messages": [...]}</c>.</summary>
/// <param name="Messages">Inbound and completed outbound messages, oldest first.</param>
public sealed record ThreadValues(IReadOnlyList<LangChainMessage> Messages);

/// <summary><c>updates</c> event data: <c>{"agent": {"messages": [...]}}</c> (the node is always <c>agent</c>).</summary>
/// <param name="Agent">What the agent node added.</param>
public sealed record AgentUpdates(ThreadValues Agent);

/// <summary>The first event of every run: <c>{"run_id": ..., "attempt": 1}</c> (reference capture 08).</summary>
/// <param name="RunId">The run.</param>
/// <param name="Attempt">Always 1.</param>
public sealed record RunMetadataEvent(string RunId, int Attempt);

/// <summary>Thread-stream <c>end</c> event: a run ended.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Status">Its final status in the dialect's words.</param>
public sealed record RunEndEvent(string RunId, string Status);

/// <summary><c>error</c> event data (reference SEMANTICS.md): <c>{"error": "RunError", "message": "..."}</c>.</summary>
/// <param name="Error">An error name.</param>
/// <param name="Message">What happened.</param>
public sealed record RunErrorEvent(string Error, string Message);

/// <summary>The metadata half of a <c>messages</c> (messages-tuple) event.</summary>
public sealed record MessageChunkMetadata
{
    /// <summary>The run.</summary>
    public required string RunId { get; init; }
    /// <summary>The thread.</summary>
    public required string ThreadId { get; init; }
    /// <summary>The agent (UUID), or null when unknown.</summary>
    public string? AssistantId { get; init; }
    /// <summary>The agent's name, or null.</summary>
    public string? GraphId { get; init; }
    /// <summary>Always <c>agent</c>.</summary>
    public string LanggraphNode { get; init; } = "agent";
}

/// <summary><c>custom</c> event data: a Parley thread event the LangChain state has no place for.</summary>
/// <param name="Type">The Parley event type: <c>tool.call</c>, <c>tool.result</c> or <c>state.updated</c>.</param>
/// <param name="Data">Its data, as in the web chat stream (camelCase).</param>
public sealed record CustomEvent(string Type, JsonElement Data);

/// <summary>A checkpoint reference in the thread state.</summary>
/// <param name="ThreadId">The thread.</param>
/// <param name="CheckpointId">The sequence number of the thread's last event, as a string.</param>
/// <param name="CheckpointNs">Always empty.</param>
/// <param name="CheckpointMap">Always null.</param>
public sealed record CheckpointRef(string ThreadId, string CheckpointId, string CheckpointNs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Dictionary<string, string>? CheckpointMap);

/// <summary>The thread state (reference captures 13 and 44).</summary>
public sealed record ThreadStateResponse
{
    /// <summary><c>{"messages": [...]}</c>, or <c>{}</c> for a thread with no message.</summary>
    public required JsonElement Values { get; init; }
    /// <summary>Always empty.</summary>
    public List<string> Next { get; init; } = [];
    /// <summary>Always empty.</summary>
    public List<string> Tasks { get; init; } = [];
    /// <summary><c>{"thread_id", "assistant_id"}</c> when the thread has an agent.</summary>
    public Dictionary<string, string>? Metadata { get; init; }
    /// <summary>ISO 8601 UTC of the last message, or null.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? CreatedAt { get; init; }
    /// <summary>The last event of the thread, or null for a thread with no message.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public CheckpointRef? Checkpoint { get; init; }
    /// <summary>Always null.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public CheckpointRef? ParentCheckpoint { get; init; }
}

/// <summary><c>GET /info</c> (reference capture 02).</summary>
/// <param name="Version">Parley's version.</param>
/// <param name="Context">Always <c>parley</c>.</param>
/// <param name="Flags">What the dialect implements.</param>
public sealed record InfoResponse(string Version, string Context, Dictionary<string, bool> Flags);

/// <summary><c>GET /ok</c>: <c>{"ok": true}</c>.</summary>
/// <param name="Ok">Always true.</param>
public sealed record OkResponse(bool Ok);

/// <summary>The run's final state for <c>runs/wait</c> when it failed: <c>{"__error__": {...}}</c>, as the SDK expects.</summary>
/// <param name="Error">The error.</param>
public sealed record WaitError([property: JsonPropertyName("__error__")] RunErrorEvent Error);

/// <summary>Source-generated JSON of the agent-server dialect: snake_case wire names, as the reference captures spell them.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AgentServerError))]
[JsonSerializable(typeof(AssistantResponse))]
[JsonSerializable(typeof(List<AssistantResponse>))]
[JsonSerializable(typeof(ThreadResponse))]
[JsonSerializable(typeof(List<ThreadResponse>))]
[JsonSerializable(typeof(RunResponse))]
[JsonSerializable(typeof(List<RunResponse>))]
[JsonSerializable(typeof(ThreadValues))]
[JsonSerializable(typeof(AgentUpdates))]
[JsonSerializable(typeof(RunMetadataEvent))]
[JsonSerializable(typeof(RunEndEvent))]
[JsonSerializable(typeof(RunErrorEvent))]
[JsonSerializable(typeof(LangChainMessage))]
[JsonSerializable(typeof(MessageChunkMetadata))]
[JsonSerializable(typeof(CustomEvent))]
[JsonSerializable(typeof(ThreadStateResponse))]
[JsonSerializable(typeof(InfoResponse))]
[JsonSerializable(typeof(OkResponse))]
[JsonSerializable(typeof(WaitError))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(Dictionary<string, bool>))]
public sealed partial class AgentServerJsonContext : JsonSerializerContext
{
    /// <summary>As <see cref="JsonSerializerContext"/>'s default, without HTML escaping (bodies and SSE data are never inlined into HTML).</summary>
    public static AgentServerJsonContext Wire { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
