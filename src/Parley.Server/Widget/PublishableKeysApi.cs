using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Parley.Core;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Server.Auth;
using Parley.Server.Hosting;
using Parley.Server.WebChat;

namespace Parley.Server.Widget;

/// <summary>
/// <c>/api/v1/publishable-keys</c>: a site owner creates, lists and revokes the browser-safe keys of the widget with
/// the secret API key (docs/widget.md). Errors use the web chat envelope.
/// </summary>
public static class PublishableKeysApi
{
    /// <summary>Most origins one key may list.</summary>
    public const int MaxOrigins = 50;

    /// <summary>Maps the endpoints; all require a secret API key (never a publishable key).</summary>
    public static RouteGroupBuilder MapPublishableKeys(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/v1/publishable-keys").WithTags("Publishable keys").RequireAuthorization()
            .AddEndpointFilter(WebChatErrors.Filter)
            .ProducesWebChatErrors();
        group.MapPost("/", CreateAsync)
            .WithName("CreatePublishableKey").WithSummary("Create a browser-safe key for the web chat widget, bound to one agent and a list of origins")
            .Accepts<CreatePublishableKeyRequest>("application/json");
        group.MapGet("/", ListAsync)
            .WithName("ListPublishableKeys").WithSummary("The organization's publishable keys");
        group.MapDelete("/{keyId}", RevokeAsync)
            .WithName("RevokePublishableKey").WithSummary("Revoke a publishable key: it and the thread tokens it issued stop working");
        return group;
    }

    private static async Task<Created<PublishableKeyResponse>> CreateAsync(
        HttpContext http, IAgentStore agents, IPublishableKeyStore keys, IOptions<RequestLimitOptions> limits, TimeProvider time, CancellationToken cancellationToken)
    {
        var body = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBodyBytes, cancellationToken);
        var agentId = JsonBody.RequiredUuid(body, "agentId");
        var origins = ReadOrigins(body);
        var name = JsonBody.OptionalString(body, "name", 200) ?? "widget";
        var organizationId = http.User.GetOrganizationId();
        var agent = await agents.GetAgentAsync(agentId, cancellationToken);
        if (agent is null || agent.OrganizationId != organizationId || !http.User.MayUseAgent(agentId))
            throw ParleyException.NotFound($"agentId: no agent {agentId} in this organization.");
        var key = new PublishableKey(Guid.CreateVersion7(), organizationId, agentId, name, PublishableKeys.GenerateKey(), origins,
            PublishableKeys.GenerateTokenSecret(), time.GetUtcNow(), null);
        await keys.AddPublishableKeyAsync(key, CancellationToken.None);
        return TypedResults.Created($"/api/v1/publishable-keys/{key.Id:D}", new PublishableKeyResponse(ToView(key)));
    }

    private static async Task<Ok<PublishableKeyList>> ListAsync(ClaimsPrincipal user, IPublishableKeyStore keys, CancellationToken cancellationToken)
    {
        var list = await keys.ListPublishableKeysAsync(user.GetOrganizationId(), cancellationToken);
        return TypedResults.Ok(new PublishableKeyList(list.Where(k => user.MayUseAgent(k.AgentId)).Select(ToView).ToList()));
    }

    private static async Task<Ok<PublishableKeyResponse>> RevokeAsync(
        string keyId, ClaimsPrincipal user, IPublishableKeyStore keys, TimeProvider time, CancellationToken cancellationToken)
    {
        var id = JsonBody.RouteUuid(keyId, "keyId");
        var organizationId = user.GetOrganizationId();
        var existing = (await keys.ListPublishableKeysAsync(organizationId, cancellationToken)).FirstOrDefault(k => k.Id == id);
        if (existing is null || !user.MayUseAgent(existing.AgentId))
            throw ParleyException.NotFound($"keyId: no publishable key {id} in this organization.");
        var revoked = await keys.RevokePublishableKeyAsync(organizationId, id, time.GetUtcNow(), CancellationToken.None)
            ?? throw ParleyException.NotFound($"keyId: no publishable key {id} in this organization.");
        return TypedResults.Ok(new PublishableKeyResponse(ToView(revoked)));
    }

    /// <summary>Reads <c>allowedOrigins</c>: 1 to <see cref="MaxOrigins"/> origins, each normalized; duplicates dropped.</summary>
    /// <exception cref="ParleyException">Missing, not an array of strings, or an entry that is not an origin (naming it).</exception>
    internal static IReadOnlyList<string> ReadOrigins(JsonElement body)
    {
        if (!body.TryGetProperty("allowedOrigins", out var value) || value.ValueKind == JsonValueKind.Null)
            throw ParleyException.BadRequest("allowedOrigins: is required (for example [\"https://example.com\"]).");
        if (value.ValueKind != JsonValueKind.Array) throw ParleyException.BadRequest("allowedOrigins: must be an array of origins.");
        var origins = new List<string>();
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            var text = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            var origin = PublishableKeys.NormalizeOrigin(text)
                ?? throw ParleyException.BadRequest($"allowedOrigins[{index}]: must be an origin such as https://example.com (scheme, host, optional port; no path or wildcard) or \"self\".");
            if (!origins.Contains(origin)) origins.Add(origin);
            index++;
        }
        if (origins.Count == 0) throw ParleyException.BadRequest("allowedOrigins: must list at least one origin.");
        if (origins.Count > MaxOrigins) throw ParleyException.BadRequest($"allowedOrigins: at most {MaxOrigins} origins.");
        return origins;
    }

    internal static PublishableKeyView ToView(PublishableKey key) => new(
        key.Id.ToString("D"), key.Key, key.Name, key.AgentId.ToString("D"), key.AllowedOrigins,
        UtcTimestampJsonConverter.ToText(key.CreatedAt), key.RevokedAt is { } revoked ? UtcTimestampJsonConverter.ToText(revoked) : null);
}
