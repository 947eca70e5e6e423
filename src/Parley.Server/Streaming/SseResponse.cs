namespace Parley.Server.Streaming;

/// <summary>What every SSE endpoint does the same way: headers, lifetime, heartbeat comment.</summary>
internal static class SseResponse
{
    /// <summary>The keep-alive comment line (WHATWG SSE: a line starting with ':' is ignored by clients).</summary>
    public static readonly byte[] Heartbeat = ": ping\n\n"u8.ToArray();

    // A stream ends when the client leaves (the request's token) or when the server begins to stop: streams must not
    // hold shutdown open, and clients reconnect with Last-Event-ID (to this node when it is back, or to another). The
    // stop reaches every stream through ThreadEventReader's one registration (ReadAsync with endWhenStopping), not a
    // linked cancellation source per stream (≈ 0.3 KB each; docs/benchmarks.md, idle-streams).

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
