using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.AgentServer;

/// <summary>Test-side calls of the agent-server dialect, returning raw JSON so tests assert the wire.</summary>
public static class AgentServerClient
{
    public static async Task<(HttpStatusCode Status, JsonElement Body)> SendJsonAsync(this HttpClient client, HttpMethod method, string url, object? body = null)
    {
        using var request = new HttpRequestMessage(method, url);
        if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<JsonElement> OkJsonAsync(this HttpClient client, HttpMethod method, string url, object? body = null)
    {
        var (status, json) = await client.SendJsonAsync(method, url, body);
        Assert.True(status == HttpStatusCode.OK, $"{method} {url}: {(int)status} {json}");
        return json;
    }

    public static async Task<string> CreateAgentServerThreadAsync(this HttpClient client, object? metadata = null) =>
        (await client.OkJsonAsync(HttpMethod.Post, "/threads", new { metadata })).GetProperty("thread_id").GetString()!;

    public static async Task<JsonElement> CreateRunAsync(this HttpClient client, string threadId, string assistantId, string? message = "hi", string? multitaskStrategy = null)
    {
        var input = message is null ? null : new { messages = new[] { new { role = "user", content = message } } };
        return await client.OkJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = assistantId, input, multitask_strategy = multitaskStrategy });
    }

    public static Task<SseStream> StreamRunAsync(this HttpClient client, string threadId, object body) =>
        SseStream.OpenAsync(client, new HttpRequestMessage(HttpMethod.Post, $"/threads/{threadId}/runs/stream") { Content = JsonContent.Create(body) });

    public static Task<SseStream> JoinRunAsync(this HttpClient client, string threadId, string runId, string? lastEventId = null, string? query = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}/stream" + (query is null ? "" : "?" + query));
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        return SseStream.OpenAsync(client, request);
    }

    public static Task<SseStream> JoinThreadAsync(this HttpClient client, string threadId, string? lastEventId = null, string? query = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/threads/{threadId}/stream" + (query is null ? "" : "?" + query));
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        return SseStream.OpenAsync(client, request);
    }

    /// <summary>Polls the run until <paramref name="until"/> holds for its status (bounded: 10 s).</summary>
    public static async Task<JsonElement> WaitForRunAsync(this HttpClient client, string threadId, string runId, Func<string, bool> until)
    {
        for (var i = 0; i < 200; i++)
        {
            var run = await client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}");
            if (until(run.GetProperty("status").GetString()!)) return run;
            await Task.Delay(50);
        }
        throw new TimeoutException($"run {runId} did not reach the expected status");
    }

    public static string Detail(this JsonElement error) => error.GetProperty("detail").GetString()!;

    /// <summary>(event, id) pairs, for comparing streams.</summary>
    public static List<(string? Id, string Event, string Data)> Shape(this IEnumerable<SseItem<string>> items) =>
        items.Select(i => (i.EventId, i.EventType, i.Data)).ToList();

    /// <summary>A PROMPT agent that answers with the scripted model <c>test</c>.</summary>
    public static string PromptAgent(Guid id, string name = "Story bot") => $$$"""
        id: {{{id}}}
        name: {{{name}}}
        mode: PROMPT
        model: test
        instructions: "You tell stories."
        """;
}
