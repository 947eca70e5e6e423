using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Storage;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.WebChat;

namespace Parley.Server.AgentServer;

/// <summary>
/// Agent-server assistants: an assistant is a Parley agent of the key's organization (an agent-scoped key sees only its
/// agent). Its <c>assistant_id</c> is the agent's id and its <c>graph_id</c> the agent's name; a run may name either.
/// </summary>
public static class AssistantsApi
{
    /// <summary>Maps <c>POST /assistants/search</c> and <c>GET /assistants/{assistant_id}</c>; both need an API key.</summary>
    public static RouteGroupBuilder MapAgentServerAssistants(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/assistants").WithTags("Agent server: assistants").RequireAuthorization()
            .AddEndpointFilter(AgentServerErrors.Filter).ProducesAgentServerErrors();
        group.MapPost("/search", SearchAsync).WithName("AgentServerSearchAssistants").WithSummary("Search assistants (the organization's agents) by graph_id or name");
        group.MapGet("/{assistant_id}", GetAsync).WithName("AgentServerGetAssistant").WithSummary("Get an assistant by id or graph_id");
        return group;
    }

    private static async Task<JsonHttpResult<List<AssistantResponse>>> SearchAsync(
        HttpContext http, IAgentStore agents, IOptions<RequestLimitOptions> limits, CancellationToken cancellationToken)
    {
        var body = await AgentServerAccess.ReadBodyAsync(http.Request, limits, cancellationToken);
        var graphId = JsonBody.OptionalString(body, "graph_id", 200);
        var name = JsonBody.OptionalString(body, "name", 200);
        var metadata = JsonBody.OptionalStringMap(body, "metadata");
        var limit = AgentServerAccess.OptionalInt(body, "limit", 10, 1000);
        var offset = AgentServerAccess.OptionalInt(body, "offset", 0, int.MaxValue);
        var all = await agents.ListAgentsAsync(http.User.GetOrganizationId(), cancellationToken);
        var assistants = all
            .Where(a => http.User.MayUseAgent(a.Agent.Id))
            .Where(a => graphId is null || a.Agent.Name == graphId)
            .Where(a => name is null || a.Agent.Name.Contains(name, StringComparison.OrdinalIgnoreCase))
            .Select(a => AgentServerAccess.ToAssistant(a.Agent, a.Version))
            .Where(a => metadata.All(pair => a.Metadata.TryGetValue(pair.Key, out var value) && value == pair.Value))
            .ToList();
        http.Response.Headers["X-Pagination-Total"] = assistants.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Json(assistants.Skip(offset).Take(limit).ToList(), AgentServerJsonContext.Wire.ListAssistantResponse);
    }

    private static async Task<JsonHttpResult<AssistantResponse>> GetAsync(string assistant_id, ClaimsPrincipal user, IAgentStore agents, CancellationToken cancellationToken)
    {
        var (agent, version) = await AgentServerAccess.FindAssistantAsync(user, agents, assistant_id, cancellationToken);
        return TypedResults.Json(AgentServerAccess.ToAssistant(agent, version), AgentServerJsonContext.Wire.AssistantResponse);
    }
}
