using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.Streaming;
using Parley.Server.Widget;

namespace Parley.Server.WebChat;

/// <summary>
/// The web chat dialect's thread endpoints (seeds: feather-create-web-thread.md, feather-send-thread-message.md,
/// feather-stream-thread-messages.md; decisions where they are silent: docs/web-chat-api.md).
/// </summary>
public static class WebChatThreadsApi
{
    /// <summary>Default page size of the history endpoint.</summary>
    public const int DefaultPageSize = 50;

    /// <summary>Largest page size of the history endpoint.</summary>
    public const int MaxPageSize = 100;

    /// <summary>
    /// Maps the thread endpoints under <c>/api/v1/threads</c>; all require an API key. Creating a thread, reading it,
    /// posting and listing messages and the stream also take a publishable key with its thread token (the widget,
    /// docs/widget.md).
    /// </summary>
    public static RouteGroupBuilder MapWebChatThreads(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/v1/threads").WithTags("Web chat threads").RequireAuthorization()
            .AddEndpointFilter(WebChatErrors.Filter)
            .ProducesWebChatErrors();

        group.MapPost("/web", CreateWebThreadAsync)
            .WithName("CreateWebThread").WithSummary("Create a new web chat thread")
            .Accepts<CreateWebThreadRequest>("application/json")
            .AllowPublishableKey();
        group.MapGet("/{threadId}", GetThreadAsync)
            .WithName("GetThread").WithSummary("Get a thread (state, variables, whether it is open)")
            .AllowPublishableKey();
        group.MapPost("/{threadId}/messages", SendMessageAsync)
            .WithName("SendThreadMessage").WithSummary("Send a message to a web chat thread")
            .Accepts<SendMessageRequest>("application/json")
            .AllowPublishableKey();
        group.MapGet("/{threadId}/messages", ListMessagesAsync)
            .WithName("ListThreadMessages").WithSummary("Thread history, oldest first, cursor-paginated")
            .AllowPublishableKey();
        group.MapGet("/{threadId}/stream", StreamAsync)
            .WithName("StreamThreadMessages").WithSummary("SSE stream of new outbound messages (events=all: every thread event)")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .Produces(StatusCodes.Status204NoContent)
            .AllowPublishableKey();
        group.MapPost("/{threadId}/operator-messages", SendOperatorMessageAsync)
            .WithName("SendOperatorMessage").WithSummary("A person's reply on the thread (after a hand-off): stored as an outbound message, starts no run")
            .Accepts<SendMessageRequest>("application/json");
        group.MapPost("/{threadId}/release", ReleaseAsync)
            .WithName("ReleaseThread").WithSummary("Give a handed-off thread back to the agent");
        group.MapPatch("/{threadId}/close", CloseAsync)
            .WithName("CloseThread").WithSummary("Close a thread")
            .Accepts<CloseThreadRequest>("application/json");
        return group;
    }

    private static async Task<Ok<WebThreadResponse>> CreateWebThreadAsync(
        HttpContext http, ThreadService threads, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var body = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBodyBytes, cancellationToken);
        var publishable = http.Features.Get<PublishableKeyFeature>()?.Key;
        // A publishable key names its agent, so the widget may leave agentId out.
        var agentId = publishable is not null && !body.TryGetProperty("agentId", out _) ? publishable.AgentId : JsonBody.RequiredUuid(body, "agentId");
        if (!http.User.MayUseAgent(agentId)) throw ParleyException.NotFound($"agentId: no agent {agentId} in this organization.");
        var metadata = JsonBody.OptionalStringMap(body, "metadata");
        var variables = JsonBody.OptionalStringMap(body, "variables");
        // Variables steer the agent (they fill its instructions and flow); a page's visitor must not set them.
        if (publishable is not null && variables.Count > 0)
            throw ParleyException.BadRequest("variables: cannot be set with a publishable key; set them from your server with the secret API key.");
        var (thread, agent, version) = await threads.CreateAsync(http.User.GetOrganizationId(), agentId, metadata, variables, "WEB", cancellationToken);
        var threadToken = publishable is null ? null : PublishableKeys.ThreadToken(publishable, thread.Id);
        return TypedResults.Ok(new WebThreadResponse(ToWebThread(thread, agent, version, threads), threadToken));
    }

    private static async Task<Ok<WebThreadResponse>> GetThreadAsync(
        string threadId, ClaimsPrincipal user, ThreadService threads, IAgentStore agents, CancellationToken cancellationToken)
    {
        var thread = await FindAccessibleThreadAsync(user, threads, JsonBody.RouteUuid(threadId, "threadId"), cancellationToken);
        return TypedResults.Ok(new WebThreadResponse(await ToWebThreadAsync(thread, agents, threads, cancellationToken)));
    }

    private static async Task<Ok<SendMessageResponse>> SendMessageAsync(
        string threadId, HttpContext http, ThreadService threads, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        var body = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBodyBytes, cancellationToken);
        var text = JsonBody.RequiredString(body, "message", limits.Value.MaxMessageLength);
        var thread = await FindAccessibleThreadAsync(http.User, threads, id, cancellationToken);
        var accepted = await threads.PostInboundMessageAsync(http.User.GetOrganizationId(), thread, text, CancellationToken.None);
        return TypedResults.Ok(new SendMessageResponse(accepted.Run is null ? "stored" : "queued", id.ToString("D"), accepted.Message.Id.ToString("D"), accepted.WindowExpiresIn));
    }

    private static async Task<Ok<MessagePage>> ListMessagesAsync(
        string threadId, string? limit, string? cursor, ClaimsPrincipal user, ThreadService threads, IThreadStore store, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        var pageSize = DefaultPageSize;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize is < 1 or > MaxPageSize))
            throw ParleyException.BadRequest($"limit: must be an integer from 1 to {MaxPageSize}.");
        long after = 0;
        if (cursor is not null && (!long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out after) || after < 0))
            throw ParleyException.BadRequest("cursor: not a cursor returned by this endpoint.");
        await FindAccessibleThreadAsync(user, threads, id, cancellationToken);
        var page = await store.ListMessagesAsync(id, after, pageSize + 1, cancellationToken);
        var more = page.Count > pageSize;
        var messages = more ? page.Take(pageSize).ToList() : page;
        return TypedResults.Ok(new MessagePage(messages, more ? messages[^1].Sequence.ToString(CultureInfo.InvariantCulture) : null));
    }

    private static async Task<IResult> StreamAsync(
        string threadId, string? events, string? lastEventId, HttpContext http, ThreadService threads, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        var mode = events switch
        {
            null or "messages" => ThreadStreamMode.Messages,
            "all" => ThreadStreamMode.All,
            _ => throw ParleyException.BadRequest("events: must be 'messages' (default) or 'all'."),
        };
        var resumeFrom = http.Request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } header ? header : lastEventId;
        long after = 0;
        if (!string.IsNullOrEmpty(resumeFrom) && (!long.TryParse(resumeFrom, NumberStyles.None, CultureInfo.InvariantCulture, out after) || after < 0))
            throw ParleyException.BadRequest("Last-Event-ID: must be a non-negative integer (an id this stream sent).");
        var thread = await FindAccessibleThreadAsync(http.User, threads, id, cancellationToken);
        return new ThreadStreamResult(thread, after, mode);
    }

    private static async Task<Ok<ThreadMessage>> SendOperatorMessageAsync(
        string threadId, HttpContext http, ThreadService threads, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        var body = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBodyBytes, cancellationToken);
        var text = JsonBody.RequiredString(body, "message", limits.Value.MaxMessageLength);
        await FindAccessibleThreadAsync(http.User, threads, id, cancellationToken);
        return TypedResults.Ok(await threads.PostOperatorMessageAsync(http.User.GetOrganizationId(), id, text, CancellationToken.None));
    }

    private static async Task<Ok<WebThreadResponse>> ReleaseAsync(
        string threadId, ClaimsPrincipal user, ThreadService threads, IAgentStore agents, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        await FindAccessibleThreadAsync(user, threads, id, cancellationToken);
        var thread = await threads.ReleaseAsync(user.GetOrganizationId(), id, CancellationToken.None);
        return TypedResults.Ok(new WebThreadResponse(await ToWebThreadAsync(thread, agents, threads, cancellationToken)));
    }

    private static async Task<Ok<WebThreadResponse>> CloseAsync(
        string threadId, HttpContext http, ThreadService threads, IAgentStore agents, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(threadId, "threadId");
        string? reason = null;
        if (http.Request.ContentLength is not 0 && (http.Request.ContentLength is > 0 || http.Request.Headers.ContentType.Count > 0))
        {
            var body = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBodyBytes, cancellationToken);
            reason = JsonBody.OptionalString(body, "reason", 500);
        }
        await FindAccessibleThreadAsync(http.User, threads, id, cancellationToken);
        var thread = await threads.CloseAsync(http.User.GetOrganizationId(), id, reason ?? "closed_by_client", CancellationToken.None);
        return TypedResults.Ok(new WebThreadResponse(await ToWebThreadAsync(thread, agents, threads, cancellationToken)));
    }

    /// <summary>
    /// The thread, when the key's organization owns it, an agent-scoped key's agent serves it, and a publishable key
    /// presented this thread's token (else 404 or 403).
    /// </summary>
    private static async Task<ChatThread> FindAccessibleThreadAsync(ClaimsPrincipal user, ThreadService threads, Guid threadId, CancellationToken cancellationToken)
    {
        if (!user.MayUseThread(threadId))
            throw ParleyException.Forbidden($"threadId: thread {threadId} is not accessible with this API key.");
        var thread = await threads.GetAsync(user.GetOrganizationId(), threadId, cancellationToken);
        if (!user.MayUseAgent(thread.AgentId))
            throw ParleyException.Forbidden($"threadId: thread {threadId} is not accessible with this API key.");
        if (thread.AgentId is null)
            throw new ParleyException(ParleyErrorKind.Conflict,
                $"threadId: thread {threadId} was created by the agent-server API and has no agent until its first run.");
        return thread;
    }

    private static async Task<WebThread> ToWebThreadAsync(ChatThread thread, IAgentStore agents, ThreadService threads, CancellationToken cancellationToken)
    {
        var agent = (thread.AgentId is { } agentId ? await agents.GetAgentAsync(agentId, cancellationToken) : null)
            ?? throw new InvalidOperationException($"Thread {thread.Id} has no agent.");
        var version = (thread.AgentVersionId is { } versionId ? await agents.GetAgentVersionAsync(versionId, cancellationToken) : null)
            ?? throw new InvalidOperationException($"Thread {thread.Id} has no agent version.");
        return ToWebThread(thread, agent, version, threads);
    }

    internal static WebThread ToWebThread(ChatThread thread, Agent agent, AgentVersion version, ThreadService threads) => new()
    {
        Id = thread.Id.ToString("D"),
        OrganizationId = thread.OrganizationId.ToString("D"),
        AgentVersionId = version.Id.ToString("D"),
        ToPhoneNumber = "web",
        IsActive = thread.IsActive,
        CreatedAt = UtcTimestampJsonConverter.ToText(thread.CreatedAt),
        UpdatedAt = UtcTimestampJsonConverter.ToText(thread.UpdatedAt),
        ClosedAt = thread.ClosedAt is { } closed ? UtcTimestampJsonConverter.ToText(closed) : null,
        ClosedReason = thread.ClosedReason,
        Metadata = thread.Metadata,
        Variables = thread.Variables,
        AgentId = agent.Id.ToString("D"),
        AgentDetails = new WebAgentDetails(agent.Id.ToString("D"), agent.Name, agent.Description, agent.AgentType),
        AgentVersionDetails = WebChatAgentsApi.ToVersionDetails(version, agent),
        WindowExpiresIn = thread.IsActive ? threads.WindowSecondsLeft(thread) : 0,
        Control = thread.State.Control,
        LastEventId = thread.LastSequence,
    };

}
