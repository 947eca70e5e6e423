using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.WebChat;

namespace Parley.Server.AgentServer;

/// <summary>
/// Agent-server threads: create, get, search, delete, state, and the Join Thread Stream of seed
/// langgraph-join-thread-stream.md. A thread is a Parley thread: web chat and chat-stream threads are listed and
/// readable here too. Decisions: docs/agent-server-api.md.
/// </summary>
public static class ThreadsApi
{
    /// <summary>Largest page of <c>POST /threads/search</c>.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Maps the thread endpoints under <c>/threads</c>; all need an API key (<c>x-api-key</c>).</summary>
    public static RouteGroupBuilder MapAgentServerThreads(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/threads").WithTags("Agent server: threads").RequireAuthorization()
            .AddEndpointFilter(AgentServerErrors.Filter).ProducesAgentServerErrors();
        group.MapPost("/", CreateAsync).WithName("AgentServerCreateThread").WithSummary("Create a thread (with metadata; no assistant until its first run)");
        group.MapPost("/search", SearchAsync).WithName("AgentServerSearchThreads").WithSummary("Search the organization's threads by metadata, ids and status");
        group.MapGet("/{thread_id}", GetAsync).WithName("AgentServerGetThread").WithSummary("Get a thread");
        group.MapDelete("/{thread_id}", DeleteAsync).WithName("AgentServerDeleteThread").WithSummary("Delete a thread, its runs, messages and log");
        group.MapGet("/{thread_id}/state", GetStateAsync).WithName("AgentServerGetThreadState").WithSummary("The thread's values: its messages in LangChain shape");
        group.MapGet("/{thread_id}/stream", JoinStreamAsync).WithName("AgentServerJoinThreadStream")
            .WithSummary("Join Thread Stream: every run on the thread, in order; stays open; Last-Event-ID resumes ('-': from the beginning)")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        return group;
    }

    private static async Task<JsonHttpResult<ThreadResponse>> CreateAsync(
        HttpContext http, ThreadService threads, IThreadStore store, IAgentStore agents, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var body = await AgentServerAccess.ReadBodyAsync(http.Request, limits, cancellationToken);
        var metadata = JsonBody.OptionalStringMap(body, "metadata");
        Guid? threadId = JsonBody.OptionalString(body, "thread_id", 100) is { } text ? AgentServerAccess.Uuid(text, "thread_id") : null;
        var ifExists = JsonBody.OptionalString(body, "if_exists", 20) ?? "raise";
        if (ifExists is not ("raise" or "do_nothing")) throw ParleyException.BadRequest("if_exists: must be 'raise' or 'do_nothing'.");
        // An agent-scoped key's threads belong to its agent from the start, so that key can always see them.
        AgentVersion? pinned = null;
        if (http.User.ScopedAgentId() is { } scoped)
            pinned = (await AgentServerAccess.FindAssistantAsync(http.User, agents, scoped.ToString("D"), cancellationToken)).Version;
        var (thread, created) = await threads.CreateWithoutAgentAsync(http.User.GetOrganizationId(), threadId, metadata, AgentServerAccess.Channel, pinned, CancellationToken.None);
        if (!created && (ifExists == "raise" || !http.User.MayUseAgent(thread.AgentId)))
            throw new ParleyException(ParleyErrorKind.Conflict, $"thread_id: thread {thread.Id} already exists.");
        return TypedResults.Json(await AgentServerAccess.ToThreadAsync(store, thread, cancellationToken), AgentServerJsonContext.Wire.ThreadResponse);
    }

    private static async Task<JsonHttpResult<ThreadResponse>> GetAsync(string thread_id, ClaimsPrincipal user, IThreadStore store, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        return TypedResults.Json(await AgentServerAccess.ToThreadAsync(store, thread, cancellationToken), AgentServerJsonContext.Wire.ThreadResponse);
    }

    private static async Task<JsonHttpResult<List<ThreadResponse>>> SearchAsync(
        HttpContext http, IThreadStore store, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var body = await AgentServerAccess.ReadBodyAsync(http.Request, limits, cancellationToken);
        var metadata = JsonBody.OptionalStringMap(body, "metadata");
        var limit = AgentServerAccess.OptionalInt(body, "limit", 10, MaxPageSize);
        var offset = AgentServerAccess.OptionalInt(body, "offset", 0, int.MaxValue);
        var status = JsonBody.OptionalString(body, "status", 20);
        if (status is not (null or "idle" or "busy" or "interrupted" or "error"))
            throw ParleyException.BadRequest("status: must be one of idle, busy, interrupted, error.");
        List<Guid>? ids = null;
        if (body.TryGetProperty("ids", out var idsValue) && idsValue.ValueKind != JsonValueKind.Null)
        {
            if (idsValue.ValueKind != JsonValueKind.Array) throw ParleyException.BadRequest("ids: must be an array of UUIDs.");
            ids = [.. idsValue.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String && Guid.TryParse(v.GetString(), out var id)
                ? id : throw ParleyException.BadRequest("ids: must be an array of UUIDs."))];
        }

        var organizationId = http.User.GetOrganizationId();
        var agentId = http.User.ScopedAgentId();
        var found = new List<ThreadResponse>();
        if (status is null)
        {
            foreach (var thread in await store.ListThreadsAsync(new ThreadQuery(organizationId, agentId, metadata, ids, limit, offset), cancellationToken))
                found.Add(await AgentServerAccess.ToThreadAsync(store, thread, cancellationToken));
            return TypedResults.Json(found, AgentServerJsonContext.Wire.ListThreadResponse);
        }
        // The status is derived from runs, so it is filtered here, page by page, in the same order.
        var skipped = 0;
        for (var page = 0; found.Count < limit; page += MaxPageSize)
        {
            var threads = await store.ListThreadsAsync(new ThreadQuery(organizationId, agentId, metadata, ids, MaxPageSize, page), cancellationToken);
            foreach (var thread in threads)
            {
                var shaped = await AgentServerAccess.ToThreadAsync(store, thread, cancellationToken);
                if (shaped.Status != status) continue;
                if (skipped++ < offset) continue;
                found.Add(shaped);
                if (found.Count == limit) break;
            }
            if (threads.Count < MaxPageSize) break;
        }
        return TypedResults.Json(found, AgentServerJsonContext.Wire.ListThreadResponse);
    }

    private static async Task<NoContent> DeleteAsync(string thread_id, ClaimsPrincipal user, ThreadService threads, IThreadStore store, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        await threads.DeleteAsync(user.GetOrganizationId(), thread.Id, CancellationToken.None);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> GetStateAsync(string thread_id, ClaimsPrincipal user, IThreadStore store, IAgentStore agents, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(user, store, thread_id, cancellationToken);
        var projector = new AgentServerProjector(store, agents, thread.Id);
        await projector.InitializeAsync(thread.LastSequence, cancellationToken);
        var values = projector.Values;
        if (values.Messages.Count == 0)
            // Reference capture 44: a thread with no message.
            return TypedResults.Json(new ThreadStateResponse { Values = JsonDocument.Parse("{}").RootElement }, AgentServerJsonContext.Wire.ThreadStateResponse);
        var metadata = new Dictionary<string, string> { ["thread_id"] = thread.Id.ToString("D") };
        if (thread.AgentId is { } agentId) metadata["assistant_id"] = agentId.ToString("D");
        var newest = values.Messages[^1];
        var newestMessage = Guid.TryParse(newest.Id, out var newestId) ? await store.GetMessageAsync(newestId, cancellationToken) : null;
        return TypedResults.Json(new ThreadStateResponse
        {
            Values = JsonSerializer.SerializeToElement(values, AgentServerJsonContext.Wire.ThreadValues),
            Metadata = metadata,
            CreatedAt = UtcTimestampJsonConverter.ToText(newestMessage?.CreatedAt ?? thread.UpdatedAt),
            Checkpoint = new CheckpointRef(thread.Id.ToString("D"), thread.LastSequence.ToString(System.Globalization.CultureInfo.InvariantCulture), "", null),
        }, AgentServerJsonContext.Wire.ThreadStateResponse);
    }

    private static async Task<IResult> JoinStreamAsync(string thread_id, HttpContext http, IThreadStore store, CancellationToken cancellationToken)
    {
        var thread = await AgentServerAccess.FindThreadAsync(http.User, store, thread_id, cancellationToken);
        // The seed names the parameter stream_modes; the SDK sends stream_mode (a JSON array): both are accepted.
        var query = http.Request.Query;
        var modes = StreamModes.CheckThreadModes(StreamModes.ParseQuery([.. query["stream_modes"], .. query["stream_mode"]], "stream_modes"));
        var lastEventId = http.Request.Headers["Last-Event-ID"].ToString().Trim();
        long readAfter;
        StreamPosition? skip = null;
        if (lastEventId.Length == 0) readAfter = thread.LastSequence; // only what happens from now on
        else if (lastEventId is "-" or "-1") readAfter = 0;          // from the beginning
        else if (StreamPosition.TryParse(lastEventId, out var position))
        {
            readAfter = Math.Max(0, position.Sequence - 1);
            skip = position;
        }
        else throw ParleyException.BadRequest($"Last-Event-ID: '{(lastEventId.Length > 60 ? lastEventId[..60] : lastEventId)}' is not an event id of this stream (or '-' for the beginning).");
        var plan = new AgentServerStreamPlan(thread.Id, readAfter, skip, StreamModes.ForThread(modes), null, false);
        return new AgentServerStreamResult(plan, new Dictionary<string, string>());
    }
}
