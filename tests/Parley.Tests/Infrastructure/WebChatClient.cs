using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace Parley.Tests.Infrastructure;

/// <summary>Test-side calls of the web chat dialect, returning raw JSON so tests assert the wire, not our DTOs.</summary>
public static class WebChatClient
{
    public static async Task<JsonElement> CreateThreadAsync(this HttpClient client, Guid agentId, object? variables = null, object? metadata = null)
    {
        var response = await client.PostAsJsonAsync("/api/v1/threads/web", new { agentId, variables, metadata });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"create thread: {(int)response.StatusCode} {body}");
        return body.GetProperty("thread");
    }

    public static async Task<JsonElement> SendAsync(this HttpClient client, string threadId, string message)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/threads/{threadId}/messages", new { message });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"send: {(int)response.StatusCode} {body}");
        return body;
    }

    public static async Task<JsonElement> GetThreadAsync(this HttpClient client, string threadId) =>
        (await client.GetFromJsonAsync<JsonElement>($"/api/v1/threads/{threadId}")).GetProperty("thread");

    public static async Task<List<JsonElement>> HistoryAsync(this HttpClient client, string threadId)
    {
        var all = new List<JsonElement>();
        string? cursor = null;
        for (var page = 0; page < 100; page++)
        {
            var url = $"/api/v1/threads/{threadId}/messages?limit=100" + (cursor is null ? "" : $"&cursor={cursor}");
            var body = await client.GetFromJsonAsync<JsonElement>(url);
            all.AddRange(body.GetProperty("messages").EnumerateArray());
            if (body.GetProperty("nextCursor").ValueKind == JsonValueKind.Null) return all;
            cursor = body.GetProperty("nextCursor").GetString();
        }
        throw new InvalidOperationException("history did not end");
    }
}

/// <summary>An open SSE stream read with <see cref="SseParser"/>; events are pulled one at a time with a timeout.</summary>
public sealed class SseStream : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly IAsyncEnumerator<SseItem<string>> _items;
    private readonly CancellationTokenSource _cts = new();

    private SseStream(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _items = SseParser.Create(body).EnumerateAsync(_cts.Token).GetAsyncEnumerator(_cts.Token);
    }

    public HttpResponseMessage Response => _response;

    public static async Task<SseStream> OpenAsync(HttpClient client, string threadId, string? lastEventId = null, string? events = null)
    {
        var url = $"/api/v1/threads/{threadId}/stream" + (events is null ? "" : $"?events={events}");
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)
            Assert.Fail($"stream: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return new SseStream(response, await response.Content.ReadAsStreamAsync());
    }

    /// <summary>Sends <paramref name="request"/> and opens its SSE response; fails unless it is 200.</summary>
    public static async Task<SseStream> OpenAsync(HttpClient client, HttpRequestMessage request)
    {
        request.Headers.Accept.ParseAdd("text/event-stream");
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)
            Assert.Fail($"stream: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return new SseStream(response, await response.Content.ReadAsStreamAsync());
    }

    /// <summary>Every event until the server ends the stream.</summary>
    public async Task<List<SseItem<string>>> ReadToEndAsync(double timeoutSeconds = 10)
    {
        var items = new List<SseItem<string>>();
        while (await NextAsync(timeoutSeconds) is { } item) items.Add(item);
        return items;
    }

    // A read that timed out is still pending on the enumerator; the next call must wait for it, never start another
    // (an async enumerator cannot be advanced twice at once).
    private Task<bool>? _pendingMove;

    /// <summary>The next event, or null when the server ended the stream. Fails after <paramref name="timeoutSeconds"/>.</summary>
    public async Task<SseItem<string>?> NextAsync(double timeoutSeconds = 10)
    {
        var move = _pendingMove ??= _items.MoveNextAsync().AsTask();
        var finished = await Task.WhenAny(move, Task.Delay(TimeSpan.FromSeconds(timeoutSeconds)));
        if (finished != move) throw new TimeoutException($"no SSE event within {timeoutSeconds} s");
        _pendingMove = null;
        return await move ? _items.Current : null;
    }

    /// <summary>Reads events until <paramref name="until"/> holds for one (inclusive).</summary>
    public async Task<List<SseItem<string>>> ReadUntilAsync(Func<SseItem<string>, bool> until, double timeoutSeconds = 10)
    {
        var items = new List<SseItem<string>>();
        while (true)
        {
            var item = await NextAsync(timeoutSeconds) ?? throw new InvalidOperationException("stream ended early: " + string.Join(", ", items.Select(i => i.EventType)));
            items.Add(item);
            if (until(item)) return items;
        }
    }

    /// <summary>Reads <paramref name="count"/> events.</summary>
    public async Task<List<SseItem<string>>> ReadAsync(int count, double timeoutSeconds = 10)
    {
        var items = new List<SseItem<string>>();
        while (items.Count < count)
            items.Add(await NextAsync(timeoutSeconds) ?? throw new InvalidOperationException($"stream ended after {items.Count} of {count} events"));
        return items;
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _response.Dispose();
        try { await _items.DisposeAsync(); } catch (Exception) { }
        _cts.Dispose();
    }
}

public static class SseItemExtensions
{
    public static JsonElement Json(this SseItem<string> item) => JsonDocument.Parse(item.Data).RootElement;
    public static string Body(this SseItem<string> item) => item.Json().GetProperty("messageBody").GetString()!;
}
