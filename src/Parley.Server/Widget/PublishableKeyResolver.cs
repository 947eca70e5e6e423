using Parley.Core.Organizations;
using Parley.Core.Storage;

namespace Parley.Server.Widget;

/// <summary>
/// Reads the publishable key of a widget request from the <c>publishableKey</c> query parameter and looks it up once
/// per request (the CORS policy and the authentication handler both need it).
/// </summary>
/// <remarks>
/// The key travels in the query string, not a header, because a CORS preflight (<c>OPTIONS</c>) carries the URL but
/// no header values, and the preflight must already know which origins the key allows. The key is public (it is in
/// the page's HTML), so a URL that ends up in a log reveals nothing; the secret thread token travels in a header.
/// </remarks>
public static class PublishableKeyResolver
{
    /// <summary>The query parameter that carries the publishable key.</summary>
    public const string QueryParameter = "publishableKey";

    private static readonly object CacheKey = new();

    /// <summary>The key named by the request, when it names one.</summary>
    public static string? ReadKey(HttpRequest request) =>
        request.Query[QueryParameter].ToString() is { Length: > 0 } key ? key.Trim() : null;

    /// <summary>The valid (not revoked) key the request names, or null when it names none or an unknown one.</summary>
    public static async ValueTask<PublishableKey?> ResolveAsync(HttpContext context)
    {
        if (context.Items.TryGetValue(CacheKey, out var cached)) return (PublishableKey?)cached;
        var value = ReadKey(context.Request);
        PublishableKey? key = null;
        if (value is not null && value.StartsWith(PublishableKeys.KeyPrefix, StringComparison.Ordinal) && value.Length <= 100)
            key = await context.RequestServices.GetRequiredService<IPublishableKeyStore>().FindPublishableKeyAsync(value, context.RequestAborted);
        context.Items[CacheKey] = key;
        return key;
    }

    /// <summary>
    /// True when <paramref name="origin"/> (an <c>Origin</c> header value) may use <paramref name="key"/>: it is in the
    /// key's list, or the list has <see cref="PublishableKeys.SelfOrigin"/> and the origin is this server's own
    /// (scheme and <c>Host</c> of the request).
    /// </summary>
    public static bool IsOriginAllowed(PublishableKey key, string origin, HttpRequest request)
    {
        var normalized = PublishableKeys.NormalizeOrigin(origin);
        if (normalized is null || normalized == PublishableKeys.SelfOrigin) return false;
        foreach (var allowed in key.AllowedOrigins)
        {
            if (allowed == normalized) return true;
            if (allowed == PublishableKeys.SelfOrigin && PublishableKeys.NormalizeOrigin($"{request.Scheme}://{request.Host.Value}") == normalized) return true;
        }
        return false;
    }
}
