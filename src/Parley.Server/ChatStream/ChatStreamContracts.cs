using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Server.ChatStream;

/// <summary>Body of <c>POST /chat</c> and <c>POST /chat/stream</c> (thinnest-chat-stream.md).</summary>
/// <param name="AgentId">Target agent id (a Parley agent UUID).</param>
/// <param name="Message">User message text.</param>
/// <param name="SessionId">Session to continue (a Parley thread id); absent: a new session.</param>
public sealed record ChatRequest(
    [property: JsonPropertyName("agent_id")] string AgentId,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("session_id")] string? SessionId);

/// <summary>Token usage as the dialect spells it.</summary>
public sealed record ChatUsage(
    [property: JsonPropertyName("input_tokens")] long InputTokens,
    [property: JsonPropertyName("output_tokens")] long OutputTokens,
    [property: JsonPropertyName("total_tokens")] long TotalTokens);

/// <summary>
/// One SSE event of <c>/chat/stream</c>: <c>{"type": "text", "content"}</c>, <c>{"type": "tool_call", "name", "args"}</c>,
/// <c>{"type": "tool_result", "name", "result"}</c>, <c>{"type": "done", "usage", "session_id"}</c> or
/// <c>{"type": "error", "message"}</c>. Fields that do not belong to the type are left out.
/// </summary>
public sealed record ChatStreamEvent
{
    /// <summary>text | tool_call | tool_result | done | error.</summary>
    [JsonPropertyName("type")] public required string Type { get; init; }
    /// <summary>text: a piece of the reply.</summary>
    [JsonPropertyName("content")] public string? Content { get; init; }
    /// <summary>tool_call / tool_result: the tool.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }
    /// <summary>tool_call: its arguments.</summary>
    [JsonPropertyName("args")] public JsonElement? Args { get; init; }
    /// <summary>tool_result: what it returned.</summary>
    [JsonPropertyName("result")] public JsonElement? Result { get; init; }
    /// <summary>done: the run's usage.</summary>
    [JsonPropertyName("usage")] public ChatUsage? Usage { get; init; }
    /// <summary>done: the session to continue (also in the <c>X-Session-Id</c> header).</summary>
    [JsonPropertyName("session_id")] public string? SessionId { get; init; }
    /// <summary>error: what went wrong.</summary>
    [JsonPropertyName("message")] public string? Message { get; init; }
}

/// <summary>A tool call made while answering <c>POST /chat</c>.</summary>
public sealed record ChatToolCall(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("args")] JsonElement Args,
    [property: JsonPropertyName("result")] JsonElement? Result);

/// <summary>Response of <c>POST /chat</c>.</summary>
public sealed record ChatResponse(
    [property: JsonPropertyName("response")] string Response,
    [property: JsonPropertyName("session_id")] string SessionId,
    [property: JsonPropertyName("usage")] ChatUsage Usage,
    [property: JsonPropertyName("tool_calls")] IReadOnlyList<ChatToolCall> ToolCalls);

/// <summary>The dialect's one error shape: <c>{"error": {"code": "not_found", "message": "..."}}</c> with the HTTP status.</summary>
public sealed record ChatError([property: JsonPropertyName("error")] ChatErrorBody Error);

/// <summary>Inside <see cref="ChatError"/>.</summary>
/// <param name="Code">bad_request | unauthorized | insufficient_balance | not_found | rate_limited | generation_failed | internal_error.</param>
/// <param name="Message">What went wrong, naming the field.</param>
public sealed record ChatErrorBody([property: JsonPropertyName("code")] string Code, [property: JsonPropertyName("message")] string Message);

/// <summary>Source-generated JSON for the chat-stream dialect (snake_case names as the seed spells them; nulls left out).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChatStreamEvent))]
[JsonSerializable(typeof(ChatResponse))]
[JsonSerializable(typeof(ChatError))]
public sealed partial class ChatStreamJsonContext : JsonSerializerContext;
