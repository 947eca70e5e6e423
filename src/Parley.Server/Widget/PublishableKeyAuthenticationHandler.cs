using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Parley.Core.Organizations;
using Parley.Server.Auth;
using Parley.Server.WebChat;

namespace Parley.Server.Widget;

/// <summary>
/// Authenticates widget requests: a publishable key (query parameter <c>publishableKey</c>, see
/// <see cref="PublishableKeyResolver"/>), an allowed <c>Origin</c>, and, on a thread's routes, the thread token in the
/// <c>X-Thread-Token</c> header. The principal carries the key's organization and agent, the key id, and the one
/// thread the token opened (<see cref="WidgetClaims.ThreadId"/>).
/// </summary>
/// <remarks>
/// Failures are answered in the web chat error envelope: 401 for a missing or unknown key or a missing thread token,
/// 403 for an origin the key does not allow or a token that is not this thread's. A request without an <c>Origin</c>
/// header is not from another site's page (browsers send <c>Origin</c> on every cross-origin request); the origin list
/// stops other sites' pages, the thread token is what protects a thread.
/// </remarks>
public sealed class PublishableKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <summary>The scheme name.</summary>
    public const string SchemeName = "PublishableKey";

    /// <summary>The header that carries the thread token.</summary>
    public const string ThreadTokenHeader = "X-Thread-Token";

    /// <inheritdoc />
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (PublishableKeyResolver.ReadKey(Request) is null) return AuthenticateResult.NoResult();
        var key = await PublishableKeyResolver.ResolveAsync(Context);
        if (key is null) return Failure(401, "Invalid publishable key.");
        var origin = Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !PublishableKeyResolver.IsOriginAllowed(key, origin, Request))
            return Failure(403, $"Origin {origin} is not allowed for this publishable key.");

        var claims = new List<Claim>
        {
            new(ParleyClaims.OrganizationId, key.OrganizationId.ToString("D")),
            new(ParleyClaims.AgentId, key.AgentId.ToString("D")),
            new(WidgetClaims.PublishableKeyId, key.Id.ToString("D")),
        };
        if (Context.GetRouteValue("threadId") is string route && Guid.TryParse(route, out var threadId))
        {
            var token = Request.Headers[ThreadTokenHeader].ToString();
            if (token.Length == 0)
                return Failure(401, $"Missing thread token: send the {ThreadTokenHeader} header with the threadToken returned when the thread was created.");
            if (!PublishableKeys.IsThreadToken(key, threadId, token))
                return Failure(403, $"threadId: thread {threadId} is not accessible with this publishable key and thread token.");
            claims.Add(new Claim(WidgetClaims.ThreadId, threadId.ToString("D")));
        }
        Context.Features.Set(new PublishableKeyFeature(key));
        var identity = new ClaimsIdentity(claims, SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    /// <inheritdoc />
    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        if (result.Failure is PublishableKeyException failure)
            await WebChatErrors.WriteAsync(Context, failure.Status, failure.Message);
        else
            await WebChatErrors.WriteAsync(Context, StatusCodes.Status401Unauthorized,
                $"Missing publishable key: pass it as the {PublishableKeyResolver.QueryParameter} query parameter.");
    }

    private static AuthenticateResult Failure(int status, string message) => AuthenticateResult.Fail(new PublishableKeyException(status, message));

    private sealed class PublishableKeyException(int status, string message) : Exception(message)
    {
        public int Status { get; } = status;
    }
}

/// <summary>The publishable key that authenticated the request (set by <see cref="PublishableKeyAuthenticationHandler"/>).</summary>
/// <param name="Key">The key.</param>
public sealed record PublishableKeyFeature(PublishableKey Key);

/// <summary>Claim types of a principal authenticated by a publishable key.</summary>
public static class WidgetClaims
{
    /// <summary>The publishable key's id (UUID).</summary>
    public const string PublishableKeyId = "parley:publishable_key_id";

    /// <summary>The thread whose token the request presented (UUID).</summary>
    public const string ThreadId = "parley:thread_id";

    /// <summary>True when the principal was authenticated by a publishable key (not a secret API key).</summary>
    public static bool IsPublishable(this ClaimsPrincipal user) => user is not Auth.ApiKeyPrincipal && user.FindFirst(PublishableKeyId) is not null;

    /// <summary>
    /// True when the principal may touch <paramref name="threadId"/>: a secret key always (organization and agent scope
    /// are checked apart), a publishable key only with that thread's token.
    /// </summary>
    public static bool MayUseThread(this ClaimsPrincipal user, Guid threadId) =>
        !user.IsPublishable() || Guid.TryParse(user.FindFirstValue(ThreadId), out var opened) && opened == threadId;
}
