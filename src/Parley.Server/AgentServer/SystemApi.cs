using Microsoft.AspNetCore.Http.HttpResults;

namespace Parley.Server.AgentServer;

/// <summary><c>GET /ok</c> and <c>GET /info</c> of the agent-server dialect (reference captures 01 and 02); no key needed.</summary>
public static class SystemApi
{
    /// <summary>Maps both endpoints.</summary>
    public static IEndpointRouteBuilder MapAgentServerSystem(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/ok", () => TypedResults.Json(new OkResponse(true), AgentServerJsonContext.Wire.OkResponse))
            .WithTags("Agent server: system").WithName("AgentServerOk").WithSummary("Liveness of the agent-server API");
        routes.MapGet("/info", Info)
            .WithTags("Agent server: system").WithName("AgentServerInfo").WithSummary("What the agent-server API of this server implements");
        return routes;
    }

    private static JsonHttpResult<InfoResponse> Info() => TypedResults.Json(new InfoResponse(
        typeof(SystemApi).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
        "parley",
        new Dictionary<string, bool> { ["assistants"] = true, ["crons"] = false, ["store"] = false, ["a2a"] = false, ["mcp"] = false }), AgentServerJsonContext.Wire.InfoResponse);
}

/// <summary>Maps every endpoint of the agent-server dialect.</summary>
public static class AgentServerEndpoints
{
    /// <summary>Maps assistants, threads, runs, <c>/ok</c> and <c>/info</c> at the root paths the SDK uses.</summary>
    public static IEndpointRouteBuilder MapAgentServer(this IEndpointRouteBuilder routes)
    {
        routes.MapAgentServerSystem();
        routes.MapAgentServerAssistants();
        routes.MapAgentServerThreads();
        routes.MapAgentServerRuns();
        return routes;
    }
}
