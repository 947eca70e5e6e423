using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace Parley.Bench;

/// <summary>The HTTP and SSE calls every scenario makes, single-node (Program.cs) and two-node (Cluster.cs) alike.</summary>
internal static class BenchClient
{
    /// <summary>An HTTP client for the Parley at <paramref name="address"/> with the bench API key, unlimited connections and a 10 min timeout.</summary>
    public static HttpClient NewClient(Uri address) => new(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
    {
        BaseAddress = address,
        Timeout = TimeSpan.FromMinutes(10),
        DefaultRequestHeaders = { { "X-API-Key", ParleyProcess.ApiKey } },
    };

    /// <summary>Creates a web chat thread with <paramref name="agent"/>; returns its id.</summary>
    public static async Task<string> CreateThreadAsync(HttpClient http, Guid agent)
    {
        var response = await http.PostAsJsonAsync("/api/v1/threads/web", new { agentId = agent });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("thread").GetProperty("id").GetString()!;
    }

    /// <summary>
    /// Posts a user message to the thread and waits for the whole response (the message is stored before it is sent).
    /// The body is written as UTF-8 bytes directly: the reflection-based <c>PostAsJsonAsync</c> of an anonymous object
    /// was a visible share of the bench's own CPU, which shares the cores with the server.
    /// </summary>
    public static async Task PostAsync(HttpClient http, string thread, string text)
    {
        var body = System.Text.Encoding.UTF8.GetBytes("{\"message\":" + JsonSerializer.Serialize(text) + "}");
        using var content = new ByteArrayContent(body) { Headers = { ContentType = new("application/json") { CharSet = "utf-8" } } };
        using var response = await http.PostAsync("/api/v1/threads/" + thread + "/messages", content);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Opens a stream (<paramref name="lastEventId"/> as <c>Last-Event-ID</c> when given) and returns once its headers arrived.</summary>
    public static async Task<HttpResponseMessage> OpenAsync(HttpClient http, string path, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        return response;
    }

    /// <summary>Reads the stream until <paramref name="until"/> holds; returns how many events <paramref name="counts"/> accepted.</summary>
    public static async Task<int> CountUntilAsync(HttpResponseMessage response, Func<SseItem<string>, bool> until, Func<SseItem<string>, bool> counts)
    {
        var n = 0;
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            if (counts(item)) n++;
            if (until(item)) break;
        }
        return n;
    }

    /// <summary>The <paramref name="p"/> quantile (0–1) of <paramref name="values"/> by the nearest-rank method; 0 when empty.</summary>
    public static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    /// <summary>
    /// The fan-out scenarios' measurement: reads every one of <paramref name="streams"/> (open on one thread) while
    /// <paramref name="post"/> posts one message whose reply has <paramref name="replyDeltas"/> deltas, until each sees
    /// <c>run.completed</c>, then closes them. Figures: subscribers, deltas delivered in all, delivered events/s and their
    /// ratio to <paramref name="ceiling"/> (events/s), subscribers that missed a delta.
    /// </summary>
    public static async Task<Dictionary<string, double>> MeasureFanOutAsync(HttpResponseMessage[] streams, Func<Task> post, int replyDeltas, double ceiling)
    {
        var started = Stopwatch.StartNew();
        var readers = streams.Select(s => CountUntilAsync(s, e => e.EventType == "run.completed", e => e.EventType == "message.delta")).ToList();
        await post();
        var counts = await Task.WhenAll(readers);
        var seconds = started.Elapsed.TotalSeconds;
        foreach (var s in streams) s.Dispose();
        return new()
        {
            ["subscribers"] = streams.Length,
            ["delivered"] = counts.Sum(),
            ["events_per_s"] = Math.Round(counts.Sum() / seconds),
            ["ratio_to_ceiling"] = Math.Round(counts.Sum() / seconds / ceiling, 3),
            ["incomplete_subscribers"] = counts.Count(n => n != replyDeltas),
        };
    }

    /// <summary>
    /// The resume scenario's measurement: reconnects to the thread's stream with <c>Last-Event-ID</c> at the middle of
    /// its <paramref name="replyDeltas"/>-delta reply and reads to the run's end. Figures: the log's size, events
    /// replayed, ms to the first replayed event, replayed events/s and their ratio to <paramref name="ceiling"/> (events/s).
    /// </summary>
    public static async Task<Dictionary<string, double>> MeasureResumeAsync(HttpClient reader, string thread, int replyDeltas, double ceiling)
    {
        var started = Stopwatch.StartNew();
        using var response = await OpenAsync(reader, $"/api/v1/threads/{thread}/stream?events=all", (replyDeltas / 2).ToString(CultureInfo.InvariantCulture));
        double firstMs = 0;
        var replayed = 0;
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            if (replayed++ == 0) firstMs = started.Elapsed.TotalMilliseconds;
            if (item.EventType == "run.completed") break;
        }
        var seconds = started.Elapsed.TotalSeconds;
        return new()
        {
            ["log_events"] = replyDeltas + 6,
            ["replayed"] = replayed,
            ["first_event_ms"] = Math.Round(firstMs, 2),
            ["replay_events_per_s"] = Math.Round(replayed / seconds),
            ["ratio_to_ceiling"] = Math.Round(replayed / seconds / ceiling, 3),
        };
    }
}
