using System.Security.Cryptography;
using Microsoft.Net.Http.Headers;

namespace Parley.Server.Widget;

/// <summary>
/// Serves the widget script at <c>/widget.js</c> (an embedded resource, so the server binary is all a deployment
/// needs). Caching: <c>Cache-Control: public, max-age=300</c> and a strong <c>ETag</c> (SHA-256 of the script), so a
/// browser revalidates every 5 minutes and gets <c>304 Not Modified</c> while the script is unchanged, and a new server
/// version reaches pages within 5 minutes.
/// </summary>
public static class WidgetApi
{
    /// <summary>Where the script is served.</summary>
    public const string ScriptPath = "/widget.js";

    /// <summary>Browser cache lifetime of the script.</summary>
    public static readonly TimeSpan CacheLifetime = TimeSpan.FromMinutes(5);

    private static readonly Lazy<(byte[] Bytes, EntityTagHeaderValue ETag)> Script = new(LoadScript);

    /// <summary>Maps <c>GET /widget.js</c> (anonymous: the script holds no secret).</summary>
    public static IEndpointConventionBuilder MapWidget(this IEndpointRouteBuilder routes) =>
        routes.MapGet(ScriptPath, ServeScript).ExcludeFromDescription().AllowAnonymous();

    private static IResult ServeScript(HttpContext http)
    {
        var (bytes, etag) = Script.Value;
        var headers = http.Response.Headers;
        headers.CacheControl = $"public, max-age={(int)CacheLifetime.TotalSeconds}";
        headers.XContentTypeOptions = "nosniff";
        // Lets pages that isolate themselves (Cross-Origin-Embedder-Policy) load the script from this server.
        headers["Cross-Origin-Resource-Policy"] = "cross-origin";
        return TypedResults.Bytes(bytes, "text/javascript; charset=utf-8", entityTag: etag);
    }

    private static (byte[], EntityTagHeaderValue) LoadScript()
    {
        using var stream = typeof(WidgetApi).Assembly.GetManifestResourceStream("Parley.Server.Widget.widget.js")
            ?? throw new InvalidOperationException("The widget script is not embedded in the server assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        var bytes = copy.ToArray();
        return (bytes, new EntityTagHeaderValue($"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..32]}\""));
    }
}
