using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.WebChat;

namespace Parley.Server.AgentServer;

/// <summary>
/// What every agent-server endpoint shares: finding the key's threads, runs and assistants (anything else is 404),
/// reading bodies, and shaping threads and runs.
/// </summary>
internal static class AgentServerAccess
{
    /// <summary>The channel of threads created by this dialect.</summary>
    public const string Channel = "AGENT_SERVER";

    /// <summary>The thread, when the key's organization owns it and an agent-scoped key's agent serves it.</summary>
    /// <exception cref="ParleyException">BadRequest (422) for a malformed id; NotFound otherwise.</exception>
    public static async Task<ChatThread> FindThreadAsync(ClaimsPrincipal user, IThreadStore store, string threadId, CancellationToken cancellationToken)
    {
        var id = Uuid(threadId, "thread_id");
        var thread = await store.GetThreadAsync(id, cancellationToken);
        if (thread is null || thread.OrganizationId != user.GetOrganizationId() || !user.MayUseAgent(thread.AgentId))
            throw ParleyException.NotFound($"Thread with ID {id} not found");
        return thread;
    }

    /// <summary>The run of the thread.</summary>
    /// <exception cref="ParleyException">BadRequest (422) for a malformed id; NotFound when the thread has no such run.</exception>
    public static async Task<Run> FindRunAsync(IThreadStore store, ChatThread thread, string runId, CancellationToken cancellationToken)
    {
        var id = Uuid(runId, "run_id");
        var run = await store.GetRunAsync(id, cancellationToken);
        if (run is null || run.ThreadId != thread.Id) throw ParleyException.NotFound($"Run with ID {id} not found");
        return run;
    }

    /// <summary>An assistant by its id (the agent's UUID) or its <c>graph_id</c> (the agent's name).</summary>
    /// <exception cref="ParleyException">NotFound, with the reference server's text (capture 48).</exception>
    public static async Task<(Agent Agent, AgentVersion Version)> FindAssistantAsync(ClaimsPrincipal user, IAgentStore agents, string assistantId, CancellationToken cancellationToken)
    {
        var organizationId = user.GetOrganizationId();
        (Agent, AgentVersion)? found = null;
        if (Guid.TryParse(assistantId, out var id))
        {
            if (await agents.GetAgentAsync(id, cancellationToken) is { } agent && agent.OrganizationId == organizationId
                && await agents.GetAgentVersionAsync(agent.CurrentVersionId, cancellationToken) is { } version)
                found = (agent, version);
        }
        else
        {
            var named = (await agents.ListAgentsAsync(organizationId, cancellationToken)).FirstOrDefault(a => a.Agent.Name == assistantId);
            if (named.Agent is not null) found = named;
        }
        if (found is not { } result || !user.MayUseAgent(result.Item1.Id))
            throw ParleyException.NotFound($"No assistant found for \"{assistantId}\". Make sure the assistant ID is for a valid assistant or a valid graph ID.");
        return result;
    }

    /// <summary>Parses a UUID path segment.</summary>
    /// <exception cref="ParleyException">BadRequest (422) naming the field.</exception>
    public static Guid Uuid(string value, string name) =>
        Guid.TryParse(value, out var id) ? id : throw ParleyException.BadRequest($"{name}: must be a UUID, got '{(value.Length > 60 ? value[..60] + "…" : value)}'.");

    /// <summary>The body as a JSON object; an empty body is <c>{}</c>.</summary>
    /// <exception cref="ParleyException">BadRequest (422): too large, not JSON, or not an object.</exception>
    public static async Task<JsonElement> ReadBodyAsync(HttpRequest request, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        // The SDK always sends a body; curl users often send none (POST /threads, /threads/search).
        if (request.ContentLength == 0 || request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false)
            return EmptyObject;
        return await JsonBody.ReadObjectAsync(request, limits.Value.MaxRequestBodyBytes, cancellationToken);
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>An optional non-negative integer (limit, offset) with a default and a maximum.</summary>
    public static int OptionalInt(JsonElement body, string name, int fallback, int max)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var number) || number < 0 || number > max)
            throw ParleyException.BadRequest($"{name}: must be an integer from 0 to {max}.");
        return number;
    }

    /// <summary>An optional integer from the query string.</summary>
    public static int QueryInt(string? text, string name, int fallback, int max)
    {
        if (text is null) return fallback;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > max)
            throw ParleyException.BadRequest($"{name}: must be an integer from 0 to {max}.");
        return number;
    }

    /// <summary>The thread's status: <c>busy</c> while a run is pending or running, else from its last run.</summary>
    public static async Task<string> ThreadStatusAsync(IThreadStore store, Guid threadId, CancellationToken cancellationToken)
    {
        var last = await store.ListRunsAsync(threadId, 1, 0, cancellationToken);
        return last.Count == 0 ? "idle" : last[0].Status switch
        {
            RunStatus.pending or RunStatus.running => "busy",
            RunStatus.error => "error",
            RunStatus.interrupted or RunStatus.cancelled => "interrupted",
            _ => "idle",
        };
    }

    /// <summary>The thread as the dialect shapes it.</summary>
    public static async Task<ThreadResponse> ToThreadAsync(IThreadStore store, ChatThread thread, CancellationToken cancellationToken) => new()
    {
        ThreadId = thread.Id.ToString("D"),
        CreatedAt = UtcTimestampJsonConverter.ToText(thread.CreatedAt),
        UpdatedAt = UtcTimestampJsonConverter.ToText(thread.UpdatedAt),
        Metadata = thread.Metadata,
        Status = await ThreadStatusAsync(store, thread.Id, cancellationToken),
    };

    /// <summary>The run as the dialect shapes it.</summary>
    public static async Task<RunResponse> ToRunAsync(IAgentStore agents, Run run, MultitaskStrategy? strategy, CancellationToken cancellationToken) => new()
    {
        RunId = run.Id.ToString("D"),
        ThreadId = run.ThreadId.ToString("D"),
        AssistantId = (await agents.GetAgentVersionAsync(run.AgentVersionId, cancellationToken))?.AgentId.ToString("D"),
        Status = AgentServerProjector.Status(run.Status),
        MultitaskStrategy = strategy?.ToString(),
        CreatedAt = UtcTimestampJsonConverter.ToText(run.CreatedAt),
        UpdatedAt = UtcTimestampJsonConverter.ToText(run.EndedAt ?? run.StartedAt ?? run.CreatedAt),
    };

    /// <summary>The agent as an assistant.</summary>
    public static AssistantResponse ToAssistant(Agent agent, AgentVersion version) => new()
    {
        AssistantId = agent.Id.ToString("D"),
        GraphId = agent.Name,
        CreatedAt = UtcTimestampJsonConverter.ToText(agent.CreatedAt),
        UpdatedAt = UtcTimestampJsonConverter.ToText(agent.UpdatedAt),
        Metadata = new Dictionary<string, string> { ["mode"] = version.Definition.Mode.ToString(), ["agent_type"] = agent.AgentType.ToString() },
        Version = version.Version,
        Name = agent.Name,
        Description = agent.Description,
    };
}
