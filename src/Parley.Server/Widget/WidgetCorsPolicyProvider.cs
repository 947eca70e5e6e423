using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.Options;
using Parley.Core.Organizations;

namespace Parley.Server.Widget;

/// <summary>
/// The CORS policy of widget requests (<see cref="PolicyName"/>), resolved per request from the publishable key in the
/// URL: the key's allowed origins, <c>GET</c>/<c>POST</c>, the headers the widget sends, no credentials (the widget
/// uses no cookies). A request without a valid key gets no policy, so browsers refuse to share the response. Other
/// policy names go to ASP.NET Core's default provider.
/// </summary>
/// <remarks>
/// CORS only stops browsers from reading responses; the <see cref="PublishableKeyAuthenticationHandler"/> also refuses
/// a disallowed origin with 403 before anything is written.
/// </remarks>
public sealed class WidgetCorsPolicyProvider(IOptions<CorsOptions> options) : ICorsPolicyProvider
{
    /// <summary>The policy name widget endpoints require.</summary>
    public const string PolicyName = "Widget";

    /// <summary>How long a browser may cache a preflight answer.</summary>
    public static readonly TimeSpan PreflightMaxAge = TimeSpan.FromMinutes(10);

    private readonly DefaultCorsPolicyProvider _default = new(options);

    /// <inheritdoc />
    public async Task<CorsPolicy?> GetPolicyAsync(HttpContext context, string? policyName)
    {
        if (policyName != PolicyName) return await _default.GetPolicyAsync(context, policyName);
        var key = await PublishableKeyResolver.ResolveAsync(context);
        if (key is null) return null;
        var request = context.Request;
        return new CorsPolicyBuilder()
            .SetIsOriginAllowed(origin => PublishableKeyResolver.IsOriginAllowed(key, origin, request))
            .WithMethods(HttpMethods.Get, HttpMethods.Post)
            .WithHeaders("Content-Type", PublishableKeyAuthenticationHandler.ThreadTokenHeader, "Last-Event-ID")
            .SetPreflightMaxAge(PreflightMaxAge)
            .Build();
    }
}
