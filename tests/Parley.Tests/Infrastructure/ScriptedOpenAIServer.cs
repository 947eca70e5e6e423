using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// An OpenAI-compatible <c>/v1/chat/completions</c> endpoint on 127.0.0.1 that streams scripted chunks, so the real
/// OpenAI client, the pipeline, the run engine, the log and SSE are all exercised without a network. Each request
/// takes the next script from the queue and is recorded.
/// </summary>
public sealed class ScriptedOpenAIServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<Script> _scripts = new();

    private ScriptedOpenAIServer(WebApplication app) => _app = app;

    public string Endpoint { get; private set; } = "";
    public ConcurrentQueue<JsonNode> Requests { get; } = new();

    /// <summary>What one request gets.</summary>
    public abstract record Script;
    /// <summary>Text deltas, then usage.</summary>
    public sealed record TextReply(string[] Deltas, int PromptTokens = 12, int CompletionTokens = 5, int DelayMs = 0) : Script;
    /// <summary>One tool call whose arguments arrive in pieces, then usage.</summary>
    public sealed record ToolCallReply(string Name, string[] ArgumentPieces, string CallId = "call_1", int PromptTokens = 20, int CompletionTokens = 7) : Script;
    /// <summary>An HTTP error.</summary>
    public sealed record ErrorReply(int Status, string Message) : Script;
    /// <summary>A chunk that is not JSON.</summary>
    public sealed record MalformedReply : Script;
    /// <summary>Text deltas, then a chunk that is not JSON: the model fails in the middle of its reply.</summary>
    public sealed record BrokenReply(string[] Deltas) : Script;
    /// <summary>Headers, then nothing for a long time.</summary>
    public sealed record SilentReply(int Milliseconds) : Script;

    public void Enqueue(params Script[] scripts)
    {
        foreach (var s in scripts) _scripts.Enqueue(s);
    }

    public static async Task<ScriptedOpenAIServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new ScriptedOpenAIServer(app);
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        server.Endpoint = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/v1";
        return server;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = await JsonNode.ParseAsync(context.Request.Body);
        Requests.Enqueue(request!);
        if (!_scripts.TryDequeue(out var script)) script = new ErrorReply(500, "no script left");
        var response = context.Response;
        if (script is ErrorReply error)
        {
            response.StatusCode = error.Status;
            await response.WriteAsJsonAsync(new { error = new { message = error.Message, type = "test_error", code = (string?)null } });
            return;
        }
        response.ContentType = "text/event-stream";
        await response.StartAsync();
        async Task Send(string data)
        {
            await response.WriteAsync($"data: {data}\n\n");
            await response.Body.FlushAsync();
        }
        string Chunk(object delta, string? finish = null) => JsonSerializer.Serialize(new
        {
            id = "chatcmpl-test",
            @object = "chat.completion.chunk",
            created = 1_700_000_000,
            model = "gpt-test",
            choices = new[] { new { index = 0, delta, finish_reason = finish } },
        });
        string Usage(int prompt, int completion) => JsonSerializer.Serialize(new
        {
            id = "chatcmpl-test",
            @object = "chat.completion.chunk",
            created = 1_700_000_000,
            model = "gpt-test",
            choices = Array.Empty<object>(),
            usage = new { prompt_tokens = prompt, completion_tokens = completion, total_tokens = prompt + completion },
        });

        switch (script)
        {
            case TextReply text:
                await Send(Chunk(new { role = "assistant", content = "" }));
                foreach (var delta in text.Deltas)
                {
                    if (text.DelayMs > 0) await Task.Delay(text.DelayMs);
                    await Send(Chunk(new { content = delta }));
                }
                await Send(Chunk(new { }, "stop"));
                await Send(Usage(text.PromptTokens, text.CompletionTokens));
                await Send("[DONE]");
                break;
            case ToolCallReply call:
                await Send(Chunk(new { role = "assistant", tool_calls = new[] { new { index = 0, id = call.CallId, type = "function", function = new { name = call.Name, arguments = "" } } } }));
                foreach (var piece in call.ArgumentPieces)
                    await Send(Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = piece } } } }));
                await Send(Chunk(new { }, "tool_calls"));
                await Send(Usage(call.PromptTokens, call.CompletionTokens));
                await Send("[DONE]");
                break;
            case BrokenReply broken:
                await Send(Chunk(new { role = "assistant", content = "" }));
                foreach (var delta in broken.Deltas) await Send(Chunk(new { content = delta }));
                await Send("{this is not json");
                break;
            case MalformedReply:
                await Send(Chunk(new { role = "assistant", content = "" }));
                await Send("{this is not json");
                break;
            case SilentReply silent:
                await Task.Delay(silent.Milliseconds, context.RequestAborted);
                break;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A webhook tool receiver on 127.0.0.1 that checks Parley's HMAC signature and answers with a fixed JSON.</summary>
public sealed class SignedWebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private SignedWebhookReceiver(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";
    public ConcurrentQueue<(JsonNode Body, bool SignatureValid)> Calls { get; } = new();
    public string Secret { get; } = "whsec_" + Guid.NewGuid().ToString("N");
    public string Answer { get; set; } = """{"status":"shipped","eta":"tomorrow"}""";

    public static async Task<SignedWebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new SignedWebhookReceiver(app);
        app.MapPost("/tool", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            var timestamp = context.Request.Headers["X-Parley-Timestamp"].ToString();
            var signature = context.Request.Headers["X-Parley-Signature"].ToString();
            // The receiver's side of the contract, written independently of Parley's code.
            using var hmac = new System.Security.Cryptography.HMACSHA256(Encoding.UTF8.GetBytes(receiver.Secret));
            var expected = "sha256=" + Convert.ToHexStringLower(hmac.ComputeHash(Encoding.UTF8.GetBytes(timestamp + "." + body)));
            var fresh = long.TryParse(timestamp, out var t) && Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - t) < 300;
            var valid = fresh && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature));
            receiver.Calls.Enqueue((JsonNode.Parse(body)!, valid));
            return valid ? Results.Text(receiver.Answer, "application/json") : Results.Unauthorized();
        });
        await app.StartAsync();
        receiver.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/tool";
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
