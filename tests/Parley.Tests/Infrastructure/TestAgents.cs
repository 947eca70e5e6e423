using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Parley.Tests.Infrastructure;

/// <summary>Agent files written for a test into a temp folder.</summary>
public static class TestAgents
{
    public static string NewFolder() => Directory.CreateTempSubdirectory("parley-agents-").FullName;

    public static void Write(string folder, string fileName, string yaml) => File.WriteAllText(Path.Combine(folder, fileName), yaml);

    /// <summary>A FLOW agent that says a line, calls a webhook, reports what it captured, asks one question and ends.</summary>
    public static string WebhookAgent(Guid id, string webhookUrl) => $$$"""
        id: {{{id}}}
        name: Ticket desk
        mode: FLOW
        flow:
          start: ack
          nodes:
            ack: { type: say, text: "Checking your order...", next: hook }
            hook:
              type: webhook
              url: "{{{webhookUrl}}}"
              capture: { ticket: ticket.id }
              next: report
              onError: failed
            report: { type: say, text: "Your ticket is {{ticket}}.", next: more }
            more: { type: ask, text: "Anything else?", variable: more, next: bye }
            failed: { type: end, text: "Sorry, the ticket system is down.", reason: webhook_failed }
            bye: { type: end, text: "Bye!", reason: done }
        """;

    /// <summary>A one-question FLOW agent.</summary>
    public static string EchoAgent(Guid id, string greeting, bool discardInbound = false, int windowSeconds = 86400) => $$$"""
        id: {{{id}}}
        name: Echo
        mode: FLOW
        discardInboundSms: {{{(discardInbound ? "true" : "false")}}}
        windowSeconds: {{{windowSeconds}}}
        flow:
          start: hello
          nodes:
            hello: { type: ask, text: "{{{greeting}}}", variable: answer, next: echo }
            echo: { type: say, text: "You said {{answer}}." }
        """;
}

/// <summary>A webhook receiver on 127.0.0.1 that holds each call until the test releases it.</summary>
public sealed class BlockingWebhook : IAsyncDisposable
{
    private readonly WebApplication _app;
    private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _called = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BlockingWebhook(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";
    public Task Called => _called.Task;
    public int Calls;

    public static async Task<BlockingWebhook> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var hook = new BlockingWebhook(app);
        app.MapPost("/hook", async (HttpContext context) =>
        {
            Interlocked.Increment(ref hook.Calls);
            hook._called.TrySetResult();
            await hook._release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return Results.Json(new { ticket = new { id = "T-42" } });
        });
        await app.StartAsync();
        hook.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";
        return hook;
    }

    public void Release() => _release.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        Release();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
