using System.Runtime.CompilerServices;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Parley.Core.Organizations;

namespace Parley.Server.Auth;

/// <summary>
/// The authentication result of a valid API key, built once per <see cref="ApiKey"/> record the store hands out and
/// shared by every request it authenticates, instead of a principal, identity, claims and ticket per request. An open
/// stream holds its request's result for as long as it is open (≈ 0.7 KB each; docs/benchmarks.md, idle-streams).
/// </summary>
/// <remarks>
/// Validity is unchanged: the store is still asked on every request, and it hands out a new record when it reads the
/// key again (after its cache lapses or a revocation), which gets a new result here; results of records the store no
/// longer holds are collected with them. Shared principals are read-only by convention: nothing in Parley adds claims
/// or identities to an authenticated principal (there is no <see cref="IClaimsTransformation"/>).
/// </remarks>
internal sealed class ApiKeyTickets
{
    private readonly ConditionalWeakTable<ApiKey, Task<AuthenticateResult>> _results = new();

    /// <summary>
    /// The successful result for <paramref name="key"/> (scheme <see cref="ApiKeyAuthenticationHandler.SchemeName"/>),
    /// as a completed task: the handler returns it as is, and keeps it for the request.
    /// </summary>
    public Task<AuthenticateResult> For(ApiKey key) => _results.GetValue(key, static k => Task.FromResult(Build(k)));

    private static AuthenticateResult Build(ApiKey key)
    {
        const string scheme = ApiKeyAuthenticationHandler.SchemeName;
        var claims = new List<Claim>(4)
        {
            new(ParleyClaims.OrganizationId, key.OrganizationId.ToString("D")),
            new(ParleyClaims.ApiKeyId, key.Id.ToString("D")),
        };
        if (key.AgentId is { } agentId) claims.Add(new Claim(ParleyClaims.AgentId, agentId.ToString("D")));
        if (key.RequestsPerMinute is { } rpm) claims.Add(new Claim(ParleyClaims.RequestsPerMinute, rpm.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return AuthenticateResult.Success(new AuthenticationTicket(new ApiKeyPrincipal(key, new ClaimsIdentity(claims, scheme)), scheme));
    }
}

/// <summary>
/// The principal of a secret API key: its claims (<see cref="ParleyClaims"/>), and the same facts as typed values, so
/// that what every request asks of its key (organization, agent scope, rate-limit partition) is read without
/// searching the claims. Each <c>FindFirstValue</c> boxes an enumerator of the claim list and
/// parses a UUID: five to six per request before this (≈ 0.25 KB allocated per request).
/// </summary>
internal sealed class ApiKeyPrincipal(ApiKey key, ClaimsIdentity identity) : ClaimsPrincipal(identity)
{
    /// <summary>The organization the key acts for.</summary>
    public Guid OrganizationId { get; } = key.OrganizationId;

    /// <summary>The key's id as text (UUID, "D" format): the key's rate-limit partition.</summary>
    public string ApiKeyId { get; } = key.Id.ToString("D");

    /// <summary>For an agent-scoped key, the only agent it may use; null for an organization key.</summary>
    public Guid? AgentId { get; } = key.AgentId;

    /// <summary>The key's own rate limit (requests per minute), or null for the server's default.</summary>
    public int? RequestsPerMinute { get; } = key.RequestsPerMinute;
}
