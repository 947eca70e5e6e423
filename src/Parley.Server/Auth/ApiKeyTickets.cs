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
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, scheme)), scheme));
    }
}
