using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.Streaming;
using Parley.Server.WebChat;

namespace Parley.Server.AgentServer;

/// <summary>
/// Agent-server runs on a thread: create (background), create-and-stream, wait, get, list, cancel, join (wait) and
/// join a run's stream. A run is a Parley run: one started by a web chat message or a chat-stream request is listed,
/// read and joined here with the same ids. Decisions: docs/agent-server-api.md.
/// </summary>
public static class RunsApi
{
    /// <summary>Stream modes of <c>POST .../runs/stream</c> when the body names none (the reference's default).</summary>
    public static readonly string[] DefaultCreateModes = ["values"];

    /// <summary>Largest page of <c>GET .../runs</c>.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Maps the run endpoints under <c>/threads/{thread_id}/runs</c>; all need an API key.</summary>
    public static RouteGroupBuilder MapAgentServerRuns(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/threads/{thread_id}/runs").WithTags("Agent server: runs").RequireAuthorization()
            .AddEndpointFilter(AgentServerErrors.Filter).ProducesAgentServerErrors();
        group.MapPost("/", CreateAsync).WithName("AgentServerCreateRun").WithSummary("Create a background run");
        group.MapPost("/stream", CreateAndStreamAsync).WithName("AgentServerStreamRun").WithSummary("Create a run and stream its events")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/wait", CreateAndWaitAsync).WithName("AgentServerWaitRun").WithSummary("Create a run and answer with the thread's values when it ends");
        group.MapGet("/", ListAsync).WithName("AgentServerListRuns").WithSummary("The thread's runs, newest first");
        group.MapGet("/{run_id}", GetAsync).WithName("AgentServerGetRun").WithSummary("Get a run");
        group.MapPost("/{run_id}/cancel", CancelAsync).WithName("AgentServerCancelRun").WithSummary("Cancel a run (action interrupt or rollback)");
        group.MapGet("/{run_id}/join", JoinAsync).WithName("AgentServerJoinRun").WithSummary("Wait for a run to end; answers with the thread's values");
        group.MapGet("/{run_id}/stream", JoinStreamAsync).WithName("AgentServerJoinRunStream")
            .WithSummary("Join a run's stream; Last-Event-ID resumes after that event")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        return group;
    }

    /// <summary>A validated run request.</summary>
    private sealed record RunRequest(Agent Agent, AgentVersion Version, IReadOnlyList<string> Input, MultitaskStrategy Strategy, IReadOnlyList<string> StreamModes);

    private static async Task<IResult> CreateAsync(
        string thread_id, HttpContext http, ThreadService threads, IThreadStore store, IAgentStore agents, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(http.User, store, thread_id, cancellationToken);
        var request = await ReadRunRequestAsync(http, agents, limits, DefaultCreateModes, cancellationToken);
        if (await threads.StartRunAsync(http.User.GetOrganizationId(), thread.Id, request.Version, request.Input, request.Strategy, CancellationToken.None) is not { } run)
            return AgentServerErrors.Result(StatusCodes.Status422UnprocessableEntity, AgentServerErrors.BusyThread);
        http.Response.Headers.ContentLocation = RunPath(run);
        return TypedResults.Json(await AgentServerAccess.ToRunAsync(agents, run, request.Strategy, cancellationToken), AgentServerJsonContext.Wire.RunResponse);
    }

    private static async Task<IResult> CreateAndStreamAsync(
        string thread_id, HttpContext http, ThreadService threads, IThreadStore store, IAgentStore agents, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(http.User, store, thread_id, cancellationToken);
        var request = await ReadRunRequestAsync(http, agents, limits, DefaultCreateModes, cancellationToken);
        // The stream replays the log from before the run was created: nothing of it can be missed.
        var before = (await store.GetThreadAsync(thread.Id, cancellationToken))?.LastSequence ?? thread.LastSequence;
        if (await threads.StartRunAsync(http.User.GetOrganizationId(), thread.Id, request.Version, request.Input, request.Strategy, CancellationToken.None) is not { } run)
            return AgentServerErrors.Result(StatusCodes.Status422UnprocessableEntity, AgentServerErrors.BusyThread);
        var plan = new AgentServerStreamPlan(thread.Id, before, null, StreamModes.ForRun(request.StreamModes), run.Id, false);
        return new AgentServerStreamResult(plan, StreamHeaders(run, request.StreamModes));
    }

    private static async Task<IResult> CreateAndWaitAsync(
        string thread_id, HttpContext http, ThreadService threads, IThreadStore store, IAgentStore agents, ThreadEventReader reader,
        IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(http.User, store, thread_id, cancellationToken);
        var request = await ReadRunRequestAsync(http, agents, limits, DefaultCreateModes, cancellationToken);
        var before = (await store.GetThreadAsync(thread.Id, cancellationToken))?.LastSequence ?? thread.LastSequence;
        if (await threads.StartRunAsync(http.User.GetOrganizationId(), thread.Id, request.Version, request.Input, request.Strategy, CancellationToken.None) is not { } run)
            return AgentServerErrors.Result(StatusCodes.Status422UnprocessableEntity, AgentServerErrors.BusyThread);
        http.Response.Headers.ContentLocation = RunPath(run);
        return await WaitResultAsync(store, agents, reader, run, before, cancellationToken);
    }

    private static async Task<JsonHttpResult<List<RunResponse>>> ListAsync(
        string thread_id, string? limit, string? offset, string? status, ClaimsPrincipal user, IThreadStore store, IAgentStore agents, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        var pageSize = AgentServerAccess.QueryInt(limit, "limit", 10, MaxPageSize);
        var skip = AgentServerAccess.QueryInt(offset, "offset", 0, int.MaxValue);
        if (status is not (null or "pending" or "running" or "success" or "error" or "timeout" or "interrupted"))
            throw ParleyException.BadRequest("status: must be one of pending, running, success, error, timeout, interrupted.");
        var runs = new List<RunResponse>();
        if (status is null)
        {
            foreach (var run in await store.ListRunsAsync(thread.Id, pageSize, skip, cancellationToken))
                runs.Add(await AgentServerAccess.ToRunAsync(agents, run, null, cancellationToken));
            return TypedResults.Json(runs, AgentServerJsonContext.Wire.ListRunResponse);
        }
        var matched = 0;
        for (var page = 0; runs.Count < pageSize; page += MaxPageSize)
        {
            var batch = await store.ListRunsAsync(thread.Id, MaxPageSize, page, cancellationToken);
            foreach (var run in batch.Where(r => AgentServerProjector.Status(r.Status) == status))
            {
                if (matched++ < skip) continue;
                runs.Add(await AgentServerAccess.ToRunAsync(agents, run, null, cancellationToken));
                if (runs.Count == pageSize) break;
            }
            if (batch.Count < MaxPageSize) break;
        }
        return TypedResults.Json(runs, AgentServerJsonContext.Wire.ListRunResponse);
    }

    private static async Task<IResult> GetAsync(string thread_id, string run_id, ClaimsPrincipal user, IThreadStore store, IAgentStore agents, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        var run = await AgentServerAccess.FindRunAsync(store, thread, run_id, cancellationToken);
        return TypedResults.Json(await AgentServerAccess.ToRunAsync(agents, run, null, cancellationToken), AgentServerJsonContext.Wire.RunResponse);
    }

    private static async Task<IResult> CancelAsync(
        string thread_id, string run_id, string? wait, string? action, ClaimsPrincipal user, ThreadService threads, IThreadStore store, ThreadEventReader reader,
        CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        var run = await AgentServerAccess.FindRunAsync(store, thread, run_id, cancellationToken);
        action ??= CancelActions.Interrupt;
        if (action is not (CancelActions.Interrupt or CancelActions.Rollback)) throw ParleyException.BadRequest("action: must be 'interrupt' or 'rollback'.");
        var waitForEnd = wait switch
        {
            null or "0" or "false" => false,
            "1" or "true" => true,
            _ => throw ParleyException.BadRequest("wait: must be 0 or 1."),
        };
        var before = (await store.GetThreadAsync(thread.Id, cancellationToken))?.LastSequence ?? thread.LastSequence;
        await threads.CancelRunAsync(user.GetOrganizationId(), thread.Id, run.Id, action, CancellationToken.None);
        if (!waitForEnd) return TypedResults.Accepted((string?)null);
        await WaitForEndAsync(store, reader, run.ThreadId, run.Id, before, cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> JoinAsync(
        string thread_id, string run_id, ClaimsPrincipal user, IThreadStore store, IAgentStore agents, ThreadEventReader reader, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        var before = thread.LastSequence;
        var run = await AgentServerAccess.FindRunAsync(store, thread, run_id, cancellationToken);
        return await WaitResultAsync(store, agents, reader, run, before, cancellationToken);
    }

    private static async Task<IResult> JoinStreamAsync(string thread_id, string run_id, HttpContext http, IThreadStore store, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(http.User, store, thread_id, cancellationToken);
        var run = await AgentServerAccess.FindRunAsync(store, thread, run_id, cancellationToken);
        var query = StreamModes.ParseQuery(http.Request.Query["stream_mode"], "stream_mode");
        var modes = query.Count == 0 ? StreamModes.Implemented : StreamModes.CheckRunModes(query);
        // The run's events start with its input messages (or, for a run with none, somewhere after the thread began).
        var start = run.InputMessageId is { } inputId && await store.GetMessageAsync(inputId, cancellationToken) is { } input ? input.Sequence - 1 : 0;
        var lastEventId = http.Request.Headers["Last-Event-ID"].ToString().Trim();
        StreamPosition? skip = null;
        var readAfter = start;
        if (lastEventId.Length > 0 && lastEventId is not ("-" or "-1"))
        {
            if (!StreamPosition.TryParse(lastEventId, out var position))
                throw ParleyException.BadRequest($"Last-Event-ID: '{(lastEventId.Length > 60 ? lastEventId[..60] : lastEventId)}' is not an event id of this stream (or '-' for the beginning).");
            skip = position;
            readAfter = Math.Max(start, position.Sequence - 1);
        }
        var plan = new AgentServerStreamPlan(thread.Id, readAfter, skip, StreamModes.ForRun(modes), run.Id, run.IsFinished);
        return new AgentServerStreamResult(plan, new Dictionary<string, string>());
    }

    /// <summary>Validates the body of the three create endpoints.</summary>
    private static async Task<RunRequest> ReadRunRequestAsync(
        HttpContext http, IAgentStore agents, IOptions<RequestLimitOptions> limits, IReadOnlyList<string> defaultModes, CancellationToken cancellationToken)
    {
        var body = await AgentServerAccess.ReadBodyAsync(http.Request, limits, cancellationToken);
        var assistantId = JsonBody.RequiredString(body, "assistant_id", 200);
        var modes = StreamModes.ParseRunModes(body, defaultModes);
        var strategy = JsonBody.OptionalString(body, "multitask_strategy", 20) switch
        {
            null => MultitaskStrategy.enqueue,
            "reject" => MultitaskStrategy.reject,
            "enqueue" => MultitaskStrategy.enqueue,
            "interrupt" => MultitaskStrategy.interrupt,
            "rollback" => MultitaskStrategy.rollback,
            _ => throw ParleyException.BadRequest("multitask_strategy: must be one of reject, enqueue, interrupt, rollback."),
        };
        var input = ReadInput(body, limits.Value.MaxMessageLength);
        var (agent, version) = await AgentServerAccess.FindAssistantAsync(http.User, agents, assistantId, cancellationToken);
        return new RunRequest(agent, version, input, strategy, modes);
    }

    /// <summary>
    /// <c>input</c>: null, or <c>{"messages": [{"role"|"type": "user"|"human", "content": "..." | [{"type": "text", "text": "..."}]}]}</c>.
    /// Each message becomes an inbound Parley message.
    /// </summary>
    private static List<string> ReadInput(JsonElement body, int maxLength)
    {
        var texts = new List<string>();
        if (!body.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null) return texts;
        if (input.ValueKind != JsonValueKind.Object) throw ParleyException.BadRequest("input: must be an object.");
        if (!input.TryGetProperty("messages", out var messages) || messages.ValueKind == JsonValueKind.Null) return texts;
        if (messages.ValueKind != JsonValueKind.Array) throw ParleyException.BadRequest("input.messages: must be an array.");
        var i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var field = $"input.messages[{i++}]";
            if (message.ValueKind == JsonValueKind.String) { texts.Add(Check(message.GetString()!, field, maxLength)); continue; }
            if (message.ValueKind != JsonValueKind.Object) throw ParleyException.BadRequest($"{field}: must be an object with role and content.");
            var role = (message.TryGetProperty("role", out var r) ? r : message.TryGetProperty("type", out var t) ? t : default) is { ValueKind: JsonValueKind.String } roleValue
                ? roleValue.GetString() : "user";
            if (role is not ("user" or "human"))
                throw ParleyException.BadRequest($"{field}.role: only user (human) messages can be sent; got '{role}'.");
            if (!message.TryGetProperty("content", out var content)) throw ParleyException.BadRequest($"{field}.content: is required.");
            texts.Add(Check(ContentText(content, field), field, maxLength));
        }
        return texts;
    }

    private static string ContentText(JsonElement content, string field)
    {
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw ParleyException.BadRequest($"{field}.content: must be a string or an array of text parts.");
        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.String) { text.Append(part.GetString()); continue; }
            if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"
                && part.TryGetProperty("text", out var value) && value.ValueKind == JsonValueKind.String)
            {
                text.Append(value.GetString());
                continue;
            }
            throw ParleyException.BadRequest($"{field}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported.");
        }
        return text.ToString();
    }

    private static string Check(string text, string field, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(text)) throw ParleyException.BadRequest($"{field}.content: must not be empty.");
        if (text.Length > maxLength) throw ParleyException.BadRequest($"{field}.content: must be at most {maxLength} characters, got {text.Length}.");
        return text;
    }

    private static string RunPath(Run run) => $"/threads/{run.ThreadId:D}/runs/{run.Id:D}";

    /// <summary>
    /// Content-Location names the run (the SDK reads the run id from it); Location names its join stream with the same
    /// modes, so the SDK reconnects there on its own with Last-Event-ID when the connection drops.
    /// </summary>
    private static Dictionary<string, string> StreamHeaders(Run run, IReadOnlyList<string> modes) => new()
    {
        ["Content-Location"] = RunPath(run),
        ["Location"] = RunPath(run) + "/stream?" + string.Join("&", modes.Select(m => "stream_mode=" + Uri.EscapeDataString(m))),
    };

    /// <summary>Waits for the run's end; answers with the thread's values, or <c>{"__error__": ...}</c> when the run failed.</summary>
    private static async Task<IResult> WaitResultAsync(IThreadStore store, IAgentStore agents, ThreadEventReader reader, Run run, long before, CancellationToken cancellationToken)
    {
        var ended = await WaitForEndAsync(store, reader, run.ThreadId, run.Id, before, cancellationToken);
        if (ended?.Status == RunStatus.error)
            return TypedResults.Json(new WaitError(new RunErrorEvent("RunError", ended.Error ?? "The run failed.")), AgentServerJsonContext.Wire.WaitError);
        var thread = await store.GetThreadAsync(run.ThreadId, cancellationToken);
        var projector = new AgentServerProjector(store, agents, run.ThreadId);
        await projector.InitializeAsync(thread?.LastSequence ?? 0, cancellationToken);
        return TypedResults.Json(projector.Values, AgentServerJsonContext.Wire.ThreadValues);
    }

    /// <summary>The run once it has ended (null when it was rolled back and so deleted); reads the log after <paramref name="before"/>.</summary>
    private static async Task<Run?> WaitForEndAsync(IThreadStore store, ThreadEventReader reader, Guid threadId, Guid runId, long before, CancellationToken cancellationToken)
    {
        var current = await store.GetRunAsync(runId, cancellationToken);
        if (current is null || current.IsFinished) return current;
        await foreach (var item in reader.ReadAsync(threadId, before, TimeSpan.FromSeconds(30), cancellationToken))
        {
            if (item.Event is { } e && e.RunId == runId && AgentServerProjector.RunEndTypes.Contains(e.Type))
                return e.Type == ThreadEventTypes.RunRolledBack ? null : JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.Run);
        }
        throw new OperationCanceledException(cancellationToken);
    }
}
