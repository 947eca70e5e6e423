using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Server.WebChat;

namespace Parley.Server.Auth;

/// <summary>
/// Authenticates requests by a secret API key in the <c>X-API-Key</c> header (web chat seed, securitySchemes.ApiKey)
/// or <c>Authorization: Bearer &lt;key&gt;</c>. The key is hashed (SHA-256, remembered for keys found valid:
/// <see cref="ApiKeyHashes"/>) and looked up by its hash; the principal carries
/// the organization id (<see cref="ParleyClaims.OrganizationId"/>) and key id. A missing or unknown key is answered
/// with 401 in the web chat error envelope.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IOrganizationStore organizations,
    ApiKeyHashes hashes) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <summary>The scheme name.</summary>
    public const string SchemeName = "ApiKey";

    /// <summary>The header that carries the key.</summary>
    public const string HeaderName = "X-API-Key";

    private static readonly Task<AuthenticateResult> NoKey = Task.FromResult(AuthenticateResult.NoResult());

    /// <inheritdoc />
    /// <remarks>
    /// Not an async method: a key the store has cached is looked up synchronously, and the result's task is then the
    /// one <see cref="ApiKeyTickets"/> keeps for the key, rather than a task per request that the handler keeps for as
    /// long as the request runs.
    /// </remarks>
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = ReadKey(Request);
        if (key is null) return NoKey;
        var hash = hashes.HashOf(key);
        var lookup = organizations.FindApiKeyByHashAsync(hash, Context.RequestAborted);
        return lookup.IsCompletedSuccessfully ? Authenticated(key, hash, lookup.Result) : AuthenticateWhenFoundAsync(key, hash, lookup);
    }

    private async Task<AuthenticateResult> AuthenticateWhenFoundAsync(string key, string hash, Task<ApiKey?> lookup) =>
        await Authenticated(key, hash, await lookup);

    private Task<AuthenticateResult> Authenticated(string key, string hash, ApiKey? stored)
    {
        if (stored is null) return Task.FromResult(AuthenticateResult.Fail("Invalid API key."));
        hashes.Remember(key, hash);
        return Context.RequestServices.GetRequiredService<ApiKeyTickets>().For(stored);
    }

    /// <inheritdoc />
    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var message = ReadKey(Request) is not null ? "Invalid API key."
            : Widget.PublishableKeyResolver.ReadKey(Request) is not null ? $"This endpoint needs the secret API key in the {HeaderName} header; a publishable key cannot call it."
            : $"Missing API key: send it in the {HeaderName} header.";
        if (AgentServer.AgentServerErrors.Owns(Context))
            return AgentServer.AgentServerErrors.WriteAsync(Context, StatusCodes.Status401Unauthorized, message.Replace(HeaderName, "x-api-key"));
        return ChatStream.ChatStreamErrors.Owns(Context)
            ? ChatStream.ChatStreamErrors.WriteAsync(Context, StatusCodes.Status401Unauthorized, message.Replace($"the {HeaderName} header", "an Authorization: Bearer header"))
            : WebChatErrors.WriteAsync(Context, StatusCodes.Status401Unauthorized, message);
    }

    private static string? ReadKey(HttpRequest request)
    {
        var header = request.Headers[HeaderName].ToString();
        if (!string.IsNullOrWhiteSpace(header)) return header.Trim();
        var authorization = request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        return authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) && authorization.Length > bearer.Length
            ? authorization[bearer.Length..].Trim()
            : null;
    }
}

/// <summary>
/// Claim types Parley puts on an authenticated principal, and the questions every request asks of it. A secret key's
/// principal answers them from typed values (<see cref="ApiKeyPrincipal"/>); any other principal (a publishable key's)
/// from its claims.
/// </summary>
public static class ParleyClaims
{
    /// <summary>The organization the key acts for (UUID).</summary>
    public const string OrganizationId = "parley:organization_id";

    /// <summary>The API key's id (UUID).</summary>
    public const string ApiKeyId = "parley:api_key_id";

    /// <summary>For an agent-scoped key, the agent it may use (UUID).</summary>
    public const string AgentId = "parley:agent_id";

    /// <summary>The key's own rate limit, when it has one (requests per minute).</summary>
    public const string RequestsPerMinute = "parley:requests_per_minute";

    /// <summary>True when the key may use <paramref name="agentId"/>: organization keys may use every agent of their organization (and threads with no agent yet); agent-scoped keys only theirs.</summary>
    public static bool MayUseAgent(this ClaimsPrincipal user, Guid? agentId) => user is ApiKeyPrincipal key
        ? key.AgentId is not { } keyAgent || agentId == keyAgent
        : user.FindFirstValue(AgentId) is not { } scoped || agentId is { } id && Guid.TryParse(scoped, out var only) && only == id;

    /// <summary>For an agent-scoped key, the only agent it may use; null for an organization key.</summary>
    public static Guid? ScopedAgentId(this ClaimsPrincipal user) => user is ApiKeyPrincipal key ? key.AgentId
        : Guid.TryParse(user.FindFirstValue(AgentId), out var only) ? only : null;

    /// <summary>The organization of an authenticated principal.</summary>
    /// <exception cref="InvalidOperationException">The principal was not authenticated by an API key.</exception>
    public static Guid GetOrganizationId(this ClaimsPrincipal user) => user is ApiKeyPrincipal key ? key.OrganizationId
        : Guid.TryParse(user.FindFirstValue(OrganizationId), out var id) ? id : throw new InvalidOperationException("The request is not authenticated.");
}

/// <summary>Registers API key authentication.</summary>
public static class ApiKeyAuthenticationExtensions
{
    /// <summary>Adds the API key scheme as the default and an authorization policy that requires it.</summary>
    /// <remarks>
    /// The authorization middleware's policy evaluator is one for the server instead of one per request: ASP.NET Core
    /// registers it (and the authorization service, policy provider and handler provider behind it) as transient, and
    /// the middleware holds the request's for as long as the request runs, ≈ 0.35 KB per open stream
    /// (docs/benchmarks.md, idle-streams). They keep no per-request state; Parley's only authorization handler is
    /// ASP.NET Core's stateless pass-through. An <see cref="IAuthorizationHandler"/> added later must not be scoped.
    /// </remarks>
    public static IServiceCollection AddApiKeyAuthentication(this IServiceCollection services)
    {
        services.AddSingleton<ApiKeyTickets>();
        services.AddSingleton<ApiKeyHashes>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorization();
        services.Replace(ServiceDescriptor.Singleton<IPolicyEvaluator, PolicyEvaluator>());
        return services;
    }
}
