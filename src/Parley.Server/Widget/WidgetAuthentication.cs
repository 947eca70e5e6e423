using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Server.Auth;

namespace Parley.Server.Widget;

/// <summary>Registers publishable-key authentication, the endpoints the widget may call, and the widget's CORS.</summary>
/// <remarks>
/// Every request is authenticated once, by the default scheme (<see cref="ApiKeyAuthenticationHandler.SchemeName"/>)
/// in the authentication middleware, and the authorization middleware reuses that result. On an endpoint marked with
/// <see cref="AllowPublishableKey"/>, a request that carries a publishable key and no secret key is forwarded from the
/// API key scheme to <see cref="PublishableKeyAuthenticationHandler.SchemeName"/> (authentication and challenge:
/// <see cref="AuthenticationSchemeOptions.ForwardDefaultSelector"/>). Everywhere else the API key scheme handles the
/// request itself, so a publishable key there is no key at all: 401 in the dialect's error envelope, saying that the
/// endpoint needs the secret key. (An authorization policy naming its own scheme would authenticate the request a
/// second time, and an open stream would hold both results: docs/benchmarks.md, idle-streams.)
/// </remarks>
public static class WidgetAuthentication
{
    /// <summary>Adds the publishable key scheme, its forwarding from the API key scheme and the widget's CORS policy provider.</summary>
    public static IServiceCollection AddPublishableKeyAuthentication(this IServiceCollection services)
    {
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, PublishableKeyAuthenticationHandler>(PublishableKeyAuthenticationHandler.SchemeName, null);
        services.Configure<AuthenticationSchemeOptions>(ApiKeyAuthenticationHandler.SchemeName, o => o.ForwardDefaultSelector = SelectScheme);
        services.AddCors();
        services.Replace(ServiceDescriptor.Transient<ICorsPolicyProvider, WidgetCorsPolicyProvider>());
        return services;
    }

    /// <summary>
    /// Lets the endpoint be called from a browser with a publishable key (authentication and CORS). Without a
    /// publishable key, or with a secret key as well, the endpoint takes the secret API key as every other endpoint.
    /// </summary>
    public static RouteHandlerBuilder AllowPublishableKey(this RouteHandlerBuilder endpoint) =>
        endpoint.WithMetadata(PublishableKeyEndpoint.Instance).RequireAuthorization().RequireCors(WidgetCorsPolicyProvider.PolicyName);

    /// <summary>
    /// The scheme the API key scheme forwards to: the publishable key scheme on an endpoint that allows it when the
    /// request has a publishable key and no secret key (no <c>X-API-Key</c>, no <c>Authorization</c>); else null (the
    /// API key scheme handles the request).
    /// </summary>
    internal static string? SelectScheme(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetMetadata<PublishableKeyEndpoint>() is not null
        && string.IsNullOrEmpty(context.Request.Headers[ApiKeyAuthenticationHandler.HeaderName])
        && string.IsNullOrEmpty(context.Request.Headers.Authorization)
        && PublishableKeyResolver.ReadKey(context.Request) is not null
            ? PublishableKeyAuthenticationHandler.SchemeName
            : null;

    /// <summary>Endpoint metadata: the endpoint takes a publishable key (<see cref="AllowPublishableKey"/>).</summary>
    private sealed class PublishableKeyEndpoint
    {
        public static readonly PublishableKeyEndpoint Instance = new();
    }
}
