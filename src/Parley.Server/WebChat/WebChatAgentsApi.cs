using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Parley.Core.Agents;
using Parley.Core.Storage;
using Parley.Server.Auth;

namespace Parley.Server.WebChat;

/// <summary>The web chat dialect's agent listing.</summary>
public static class WebChatAgentsApi
{
    /// <summary>Maps <c>GET /api/v1/agents</c>: the organization's agents with ids, names, type and current version/mode.</summary>
    public static RouteGroupBuilder MapWebChatAgents(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/v1/agents").WithTags("Agents").RequireAuthorization()
            .AddEndpointFilter(WebChatErrors.Filter)
            .ProducesWebChatErrors();
        group.MapGet("/", ListAgentsAsync).WithName("ListAgents").WithSummary("The organization's agents");
        return group;
    }

    private static async Task<Ok<AgentList>> ListAgentsAsync(ClaimsPrincipal user, IAgentStore agents, CancellationToken cancellationToken)
    {
        var list = await agents.ListAgentsAsync(user.GetOrganizationId(), cancellationToken);
        return TypedResults.Ok(new AgentList(list.Where(a => user.MayUseAgent(a.Agent.Id)).Select(a =>
            new AgentSummary(a.Agent.Id.ToString("D"), a.Agent.Name, a.Agent.Description, a.Agent.AgentType, ToVersionDetails(a.Version, a.Agent))).ToList()));
    }

    internal static WebAgentVersionDetails ToVersionDetails(AgentVersion version, Agent agent) => new(
        version.Id.ToString("D"), version.Version, version.Definition.VersionName ?? agent.Name, version.Definition.Mode,
        version.Definition.SmsMaxTokens, version.Definition.SmsTemperature, version.Definition.DiscardInboundSms);
}
