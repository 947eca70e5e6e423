using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Parley.Bench;

/// <summary>
/// The ceiling: a minimal Kestrel endpoint that writes pre-formatted SSE events of the same size as Parley's delta
/// events, flushed one by one, with no Parley code in the path. Throughput figures are reported as a ratio to it.
/// </summary>
internal sealed class Ceiling : IAsyncDisposable
{
    private readonly WebApplication _app;
    private Ceiling(WebApplication app, Uri address) { _app = app; Address = address; }
    public Uri Address { get; }

    /// <summary>An event shaped like Parley's <c>message.delta</c> (id, event, data), for sequence number <paramref name="i"/>.</summary>
    public static byte[] Event(long i) => Encoding.UTF8.GetBytes(
        $"event: message.delta\ndata: {{\"messageId\":\"01a20f5d-8187-74df-9c5b-457e044467cd\",\"delta\":\" token{i}\"}}\nid: {i}\n\n");

    public static async Task<Ceiling> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        var port = ParleyProcess.FreePort();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/sse", async (HttpContext context, int n) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            for (var i = 1; i <= n; i++)
            {
                await context.Response.Body.WriteAsync(Event(i));
                await context.Response.Body.FlushAsync();
            }
        });
        await app.StartAsync();
        return new Ceiling(app, new Uri($"http://127.0.0.1:{port}"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
