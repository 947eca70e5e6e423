using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Server.Auth;

namespace Parley.Server.Widget;

/// <summary>Registers publishable-key authentication, the policy of endpoints the widget may call, and the widget's CORS.</summary>
public static class WidgetAuthentication
{
    /// <summary>
    /// Authorization policy of the endpoints a browser may call with a publishable key (create a thread, read it, post
    /// and list messages, stream). It authenticates by <see cref="SelectorScheme"/>: the secret key when the request
    /// has one, else the publishable key. Every other endpoint keeps the default policy: secret API key only.
    /// </summary>
    public const string PolicyName = "WebChatClient";

    /// <summary>The policy scheme that picks the API key or the publishable key scheme per request.</summary>
    public const string SelectorScheme = "WebChatClient";

    /// <summary>Adds the publishable key scheme, <see cref="PolicyName"/> and the widget's CORS policy provider.</summary>
    public static IServiceCollection AddPublishableKeyAuthentication(this IServiceCollection services)
    {
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, PublishableKeyAuthenticationHandler>(PublishableKeyAuthenticationHandler.SchemeName, null)
            .AddPolicyScheme(SelectorScheme, null, o => o.ForwardDefaultSelector = context =>
                PublishableKeyResolver.ReadKey(context.Request) is not null
                && string.IsNullOrEmpty(context.Request.Headers[ApiKeyAuthenticationHandler.HeaderName])
                && string.IsNullOrEmpty(context.Request.Headers.Authorization)
                    ? PublishableKeyAuthenticationHandler.SchemeName
                    : ApiKeyAuthenticationHandler.SchemeName);
        services.AddAuthorizationBuilder()
            .AddPolicy(PolicyName, policy => policy.AddAuthenticationSchemes(SelectorScheme).RequireAuthenticatedUser());
        services.AddCors();
        services.Replace(ServiceDescriptor.Transient<ICorsPolicyProvider, WidgetCorsPolicyProvider>());
        return services;
    }

    /// <summary>Lets the endpoint be called from a browser with a publishable key (authentication and CORS).</summary>
    public static RouteHandlerBuilder AllowPublishableKey(this RouteHandlerBuilder endpoint) =>
        endpoint.RequireAuthorization(PolicyName).RequireCors(WidgetCorsPolicyProvider.PolicyName);
}
