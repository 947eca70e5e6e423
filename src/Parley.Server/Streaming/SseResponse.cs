namespace Parley.Server.Streaming;

/// <summary>What every SSE endpoint does the same way: headers, lifetime, heartbeat comment.</summary>
internal static class SseResponse
{
    /// <summary>The keep-alive comment line (WHATWG SSE: a line starting with ':' is ignored by clients).</summary>
    public static readonly byte[] Heartbeat = ": ping\n\n"u8.ToArray();

    /// <summary>
    /// A token that ends the stream when the client leaves or when the server begins to stop — streams must not
    /// hold shutdown open: clients reconnect with Last-Event-ID (to this node when it is back, or to another).
    /// </summary>
    public static CancellationTokenSource LinkLifetime(HttpContext context) => CancellationTokenSource.CreateLinkedTokenSource(
        context.RequestAborted, context.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);

    /// <summary>Sends the SSE headers: event-stream, no caching, no proxy buffering (nginx), no compression.</summary>
    public static Task StartAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.Headers.ContentEncoding = "identity";
        response.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        return response.StartAsync(cancellationToken);
    }
}
