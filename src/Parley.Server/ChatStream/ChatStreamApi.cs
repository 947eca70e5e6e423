using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Threads;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.Streaming;
using Parley.Server.WebChat;

namespace Parley.Server.ChatStream;

/// <summary>
/// The chat-stream dialect (thinnest-chat-stream.md): <c>POST /chat/stream</c> answers as SSE <c>data:</c> lines
/// typed text / tool_call / tool_result / done / error; <c>POST /chat</c> answers once, as JSON. A session is a Parley
/// thread: the same conversation is visible in every dialect. Decisions: docs/chat-stream-api.md.
/// </summary>
public static class ChatStreamApi
{
    /// <summary>Response header that carries the session id.</summary>
    public const string SessionHeader = "X-Session-Id";

    /// <summary>Maps both endpoints; they need a key (<c>Authorization: Bearer</c> or <c>X-API-Key</c>).</summary>
    public static RouteGroupBuilder MapChatStream(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup(ChatStreamErrors.PathPrefix).WithTags("Chat stream").RequireAuthorization()
            .AddEndpointFilter(ChatStreamErrors.Filter);
        foreach (var status in new[] { 400, 401, 402, 404, 429, 500 })
            group.WithMetadata(new ProducesResponseTypeMetadata(status, typeof(ChatError), ["application/json"]));

        group.MapPost("/stream", StreamAsync).WithName("ChatStream").WithSummary("Send a message; the reply streams as SSE")
            .Accepts<ChatRequest>("application/json")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/", SendAsync).WithName("Chat").WithSummary("Send a message; the whole reply comes back as JSON")
            .Accepts<ChatRequest>("application/json")
            .Produces<ChatResponse>(StatusCodes.Status200OK)
            .Produces<ChatError>(StatusCodes.Status502BadGateway);
        return group;
    }

    private static async Task<IResult> StreamAsync(HttpContext http, ThreadService threads, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var (thread, accepted) = await AcceptAsync(http, threads, limits.Value, cancellationToken);
        http.Response.Headers[SessionHeader] = thread.Id.ToString("D");
        return new ChatStreamResult(thread.Id, accepted);
    }

    private static async Task<IResult> SendAsync(HttpContext http, ThreadService threads, ThreadEventReader reader, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var (thread, accepted) = await AcceptAsync(http, threads, limits.Value, cancellationToken);
        var sessionId = thread.Id.ToString("D");
        http.Response.Headers[SessionHeader] = sessionId;
        var text = new System.Text.StringBuilder();
        var calls = new List<ChatToolCall>();
        await foreach (var e in ProjectRunAsync(reader, thread.Id, accepted, TimeSpan.FromSeconds(30), endWhenStopping: false, cancellationToken))
        {
            switch (e?.Type)
            {
                case "text": text.Append(e.Content); break;
                case "tool_call": calls.Add(new ChatToolCall(e.Name!, e.Args ?? default, null)); break;
                case "tool_result":
                    var index = calls.FindLastIndex(c => c.Name == e.Name && c.Result is null);
                    if (index >= 0) calls[index] = calls[index] with { Result = e.Result };
                    break;
                case "error": return ChatStreamErrors.Result(StatusCodes.Status502BadGateway, e.Message ?? "The agent failed to answer.");
                case "done": return TypedResults.Json(new ChatResponse(text.ToString(), sessionId, e.Usage!, calls), ChatStreamJsonContext.Default.ChatResponse);
            }
        }
        throw new OperationCanceledException(cancellationToken);
    }

    /// <summary>Validates the body, opens or continues the session and stores the message (queueing its run).</summary>
    private static async Task<(ChatThread Thread, InboundMessageAccepted Accepted)> AcceptAsync(
        HttpContext http, ThreadService threads, RequestLimitOptions limits, CancellationToken cancellationToken)
    {
        var body = await JsonBody.ReadObjectAsync(http.Request, limits.MaxRequestBodyBytes, cancellationToken);
        var agentText = JsonBody.RequiredString(body, "agent_id", 200);
        var message = JsonBody.RequiredString(body, "message", limits.MaxMessageLength);
        var sessionText = JsonBody.OptionalString(body, "session_id", 200);
        var organizationId = http.User.GetOrganizationId();
        if (!Guid.TryParse(agentText, out var agentId) || !http.User.MayUseAgent(agentId))
            throw ParleyException.NotFound($"agent_id: no agent '{agentText}'.");

        await threads.EnsureBalanceAsync(organizationId, cancellationToken);
        ChatThread thread;
        if (sessionText is null)
        {
            thread = (await threads.CreateAsync(organizationId, agentId, new Dictionary<string, string>(), new Dictionary<string, string>(), "CHAT", cancellationToken)).Thread;
        }
        else
        {
            if (!Guid.TryParse(sessionText, out var sessionId)) throw ParleyException.NotFound($"session_id: no session '{sessionText}'.");
            thread = await threads.GetAsync(organizationId, sessionId, cancellationToken);
            if (thread.AgentId != agentId)
                throw ParleyException.BadRequest($"session_id: session {sessionId} belongs to another agent than agent_id.");
        }
        var accepted = await threads.PostInboundMessageAsync(organizationId, thread.Id, message, CancellationToken.None);
        return (thread, accepted);
    }

    /// <summary>
    /// The events of the run that answers <paramref name="accepted"/>, as the dialect's events, ending with done or
    /// error; null items are heartbeats. Reads the thread log after the inbound message, so nothing is missed even when
    /// the run finished before the stream started.
    /// </summary>
    internal static async IAsyncEnumerable<ChatStreamEvent?> ProjectRunAsync(
        ThreadEventReader reader, Guid threadId, InboundMessageAccepted accepted, TimeSpan heartbeat, bool endWhenStopping, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var sessionId = threadId.ToString("D");
        if (accepted.Run is not { } run)
        {
            // Stored without a reply (discardInboundSms, or a human has the session).
            yield return new ChatStreamEvent { Type = "done", Usage = new ChatUsage(0, 0, 0), SessionId = sessionId };
            yield break;
        }
        var streamed = new HashSet<string>();
        var wroteText = false;
        await foreach (var item in reader.ReadAsync(threadId, accepted.Message.Sequence, heartbeat, endWhenStopping, cancellationToken))
        {
            if (item.Kind == ThreadStreamItemKind.Heartbeat) { yield return null; continue; }
            if (item.Event is not { } e || e.RunId != run.Id) continue;
            using var data = JsonDocument.Parse(e.Data);
            var root = data.RootElement;
            switch (e.Type)
            {
                case ThreadEventTypes.MessageDelta:
                    streamed.Add(root.GetProperty("messageId").GetString()!);
                    wroteText = true;
                    yield return new ChatStreamEvent { Type = "text", Content = root.GetProperty("delta").GetString() };
                    break;
                case ThreadEventTypes.MessageCreated when root.GetProperty("direction").GetString() == "OUTBOUND"
                                                          && root.GetProperty("status").GetString() == "SENT"
                                                          && !streamed.Contains(root.GetProperty("id").GetString()!):
                    // A whole message (FLOW): one text event; messages after the first start on a new paragraph.
                    yield return new ChatStreamEvent { Type = "text", Content = (wroteText ? "\n\n" : "") + root.GetProperty("messageBody").GetString() };
                    wroteText = true;
                    break;
                case ThreadEventTypes.ToolCall:
                    yield return new ChatStreamEvent { Type = "tool_call", Name = root.GetProperty("name").GetString(), Args = root.GetProperty("arguments").Clone() };
                    break;
                case ThreadEventTypes.ToolResult:
                    yield return new ChatStreamEvent { Type = "tool_result", Name = root.GetProperty("name").GetString(), Result = root.GetProperty("result").Clone() };
                    break;
                case ThreadEventTypes.RunCompleted:
                    yield return new ChatStreamEvent { Type = "done", Usage = Usage(root), SessionId = sessionId };
                    yield break;
                case ThreadEventTypes.RunFailed:
                    yield return new ChatStreamEvent { Type = "error", Message = root.GetProperty("error").GetString() ?? "The run failed." };
                    yield break;
                case ThreadEventTypes.RunCancelled:
                    yield return new ChatStreamEvent { Type = "error", Message = "The session was closed or handed off before the agent could answer." };
                    yield break;
                case ThreadEventTypes.RunInterrupted or ThreadEventTypes.RunRolledBack:
                    // Cancelled through the agent-server dialect (cancel, or a newer run's multitask strategy).
                    yield return new ChatStreamEvent { Type = "error", Message = "The run was cancelled before it finished." };
                    yield break;
            }
        }
    }

    private static ChatUsage Usage(JsonElement run) =>
        run.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            ? new ChatUsage(usage.GetProperty("inputTokens").GetInt64(), usage.GetProperty("outputTokens").GetInt64(), usage.GetProperty("totalTokens").GetInt64())
            : new ChatUsage(0, 0, 0);
}

/// <summary>Writes one run's chat-stream events as SSE <c>data:</c> lines, each flushed whole, with <c>: ping</c> comments while idle.</summary>
internal sealed class ChatStreamResult(Guid threadId, InboundMessageAccepted accepted) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var services = httpContext.RequestServices;
        var cancellationToken = httpContext.RequestAborted;
        var heartbeat = TimeSpan.FromSeconds(services.GetRequiredService<IOptions<StreamingOptions>>().Value.HeartbeatSeconds);
        var response = httpContext.Response;
        var metrics = services.GetRequiredService<Parley.Core.Diagnostics.ParleyMetrics>();
        await SseResponse.StartAsync(response, cancellationToken);
        metrics.OpenStreams.Add(1);
        using var closed = new OpenStreamScope(metrics);
        var events = ChatStreamApi.ProjectRunAsync(services.GetRequiredService<ThreadEventReader>(), threadId, accepted, heartbeat, endWhenStopping: true, cancellationToken);
        try
        {
            await SseFormatter.WriteAsync(ItemsAsync(events, response.Body, metrics.EventsDelivered, cancellationToken), response.Body,
                static (item, writer) =>
                {
                    using var json = new Utf8JsonWriter(writer);
                    JsonSerializer.Serialize(json, item.Data, ChatStreamJsonContext.Default.ChatStreamEvent);
                },
                cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static async IAsyncEnumerable<SseItem<ChatStreamEvent>> ItemsAsync(
        IAsyncEnumerable<ChatStreamEvent?> events, Stream output, System.Diagnostics.Metrics.Counter<long> delivered, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var e in events.WithCancellation(cancellationToken))
        {
            if (e is null)
            {
                await output.WriteAsync(SseResponse.Heartbeat, cancellationToken);
                await output.FlushAsync(cancellationToken);
                continue;
            }
            delivered.Add(1);
            yield return new SseItem<ChatStreamEvent>(e);
        }
    }
}
