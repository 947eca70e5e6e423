using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Parley.Bench;

// Usage: dotnet run -c Release --project bench/Parley.Bench -- [--scenario NAME|all] [--quick] [--server-dll PATH]
//        [--nodes 2 --postgres CONNECTION-STRING --redis CONFIGURATION]   (two nodes on PostgreSQL + Redis, Cluster.cs)
// Scenarios: ceiling, single-stream, concurrent-runs, fan-out, idle-streams, ingest, resume (docs/benchmarks.md).
var arguments = args.ToList();
string? Option(string name) => arguments.IndexOf(name) is var i and >= 0 && i + 1 < arguments.Count ? arguments[i + 1] : null;
var quick = arguments.Contains("--quick");
var scenario = Option("--scenario") ?? "all";
var serverDll = Option("--server-dll") ?? Path.Combine(FindRepositoryRoot(), "src", "Parley.Server", "bin", "Release", "net10.0", "Parley.Server.dll");
var results = new List<(string Name, Dictionary<string, double> Figures)>();

void Report(string name, Dictionary<string, double> figures)
{
    results.Add((name, figures));
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object> { ["scenario"] = name, ["figures"] = figures }));
}

bool Wants(string name) => scenario == "all" || scenario == name;
Console.Error.WriteLine($"Parley.Bench: {Environment.ProcessorCount} cores, server {serverDll}, {(quick ? "quick" : "full")} sizes");

// The ceiling is measured in the same run, for the same event size, so every throughput is also a ratio to it.
double ceiling;
await using (var ceilingServer = await Ceiling.StartAsync())
{
    var n = quick ? 20_000 : 100_000;
    var stopwatch = Stopwatch.StartNew();
    using var http = NewClient(ceilingServer.Address);
    var count = await CountEventsAsync(http, $"/sse?n={n}", _ => false, CancellationToken.None);
    ceiling = count / stopwatch.Elapsed.TotalSeconds;
    Report("ceiling", new() { ["events"] = count, ["events_per_s"] = Math.Round(ceiling) });
}

// Two-node mode (Cluster.cs): the same scenarios across two nodes on PostgreSQL + Redis.
if (Option("--nodes") is { } nodes && nodes != "1")
    return await Cluster.RunAsync(arguments, serverDll, quick, ceiling, scenario, Report);

if (Wants("single-stream"))
{
    var tokens = quick ? 2_000 : 10_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, tokens, 0);
    using var http = NewClient(parley.Address);
    var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
    var run = await StreamOneRunAsync(http, thread);
    Report("single-stream", new()
    {
        ["deltas"] = run.Deltas,
        ["events_per_s"] = Math.Round(run.Deltas / run.StreamSeconds),
        ["ratio_to_ceiling"] = Math.Round(run.Deltas / run.StreamSeconds / ceiling, 3),
        ["post_to_first_delta_ms"] = Math.Round(run.FirstDeltaMs, 1),
        ["delta_gap_p50_ms"] = Math.Round(Percentile(run.Gaps, 0.50), 3),
        ["delta_gap_p99_ms"] = Math.Round(Percentile(run.Gaps, 0.99), 3),
    });
}

if (Wants("concurrent-runs"))
{
    foreach (var c in quick ? new[] { 100 } : [100, 1_000])
    {
        await using var parley = await ParleyProcess.StartAsync(serverDll, 200, 0);
        using var http = NewClient(parley.Address);
        var threads = await Task.WhenAll(Enumerable.Range(0, c).Select(_ => CreateThreadAsync(http, ParleyProcess.StreamingAgent)));
        var started = Stopwatch.StartNew();
        var runs = await Task.WhenAll(threads.Select(t => StreamOneRunAsync(http, t)));
        var seconds = started.Elapsed.TotalSeconds;
        var deltas = runs.Sum(r => r.Deltas);
        Report($"concurrent-runs-{c}", new()
        {
            ["threads"] = c,
            ["deltas"] = deltas,
            ["events_per_s"] = Math.Round(deltas / seconds),
            ["ratio_to_ceiling"] = Math.Round(deltas / seconds / ceiling, 3),
            ["post_to_first_delta_p50_ms"] = Math.Round(Percentile(runs.Select(r => r.FirstDeltaMs).ToList(), 0.50), 1),
            ["post_to_first_delta_p99_ms"] = Math.Round(Percentile(runs.Select(r => r.FirstDeltaMs).ToList(), 0.99), 1),
            ["errors"] = runs.Count(r => r.Failed),
        });
    }
}

if (Wants("fan-out"))
{
    var subscribers = quick ? 200 : 1_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 200, 0);
    using var http = NewClient(parley.Address);
    var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
    var streams = await Task.WhenAll(Enumerable.Range(0, subscribers).Select(_ => OpenAsync(http, $"/api/v1/threads/{thread}/stream?events=all", null)));
    var started = Stopwatch.StartNew();
    var readers = streams.Select(s => CountUntilAsync(s, e => e.EventType == "run.completed", e => e.EventType == "message.delta")).ToList();
    await PostAsync(http, thread, "go");
    var counts = await Task.WhenAll(readers);
    var seconds = started.Elapsed.TotalSeconds;
    foreach (var s in streams) s.Dispose();
    Report("fan-out", new()
    {
        ["subscribers"] = subscribers,
        ["delivered"] = counts.Sum(),
        ["events_per_s"] = Math.Round(counts.Sum() / seconds),
        ["ratio_to_ceiling"] = Math.Round(counts.Sum() / seconds / ceiling, 3),
        ["incomplete_subscribers"] = counts.Count(n => n != 200),
    });
}

if (Wants("idle-streams"))
{
    var count = quick ? 1_000 : 10_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 10, 0);
    using var http = NewClient(parley.Address);
    var threads = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => CreateThreadAsync(http, ParleyProcess.SilentAgent)));
    GC.Collect();
    await Task.Delay(2000);
    var before = parley.ResidentBytes();
    var streams = new List<HttpResponseMessage>(count);
    var dropped = 0;
    for (var i = 0; i < count; i += 200)
    {
        var batch = await Task.WhenAll(Enumerable.Range(i, Math.Min(200, count - i)).Select(async j =>
        {
            try { return await OpenAsync(http, $"/api/v1/threads/{threads[j % threads.Length]}/stream", null); }
            catch (Exception) { Interlocked.Increment(ref dropped); return null; }
        }));
        streams.AddRange(batch.Where(s => s is not null)!);
    }
    await Task.Delay(3000);
    var cpuBefore = parley.CpuTime();
    await Task.Delay(10_000);
    var cpu = (parley.CpuTime() - cpuBefore).TotalSeconds / 10;
    var after = parley.ResidentBytes();
    foreach (var s in streams) s.Dispose();
    Report("idle-streams", new()
    {
        ["streams"] = streams.Count,
        ["dropped"] = dropped,
        ["bytes_per_stream"] = Math.Round((after - before) / (double)Math.Max(1, streams.Count)),
        ["server_rss_mb"] = Math.Round(after / 1048576.0, 1),
        ["idle_cpu_cores"] = Math.Round(cpu, 4),
    });
}

if (Wants("ingest"))
{
    var total = quick ? 2_000 : 10_000;
    const int workers = 32;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 10, 0);
    using var http = NewClient(parley.Address);
    var threads = await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => CreateThreadAsync(http, ParleyProcess.SilentAgent)));
    // Warm-up, not measured: a fresh server spends its first seconds in the JIT (tiered compilation was 15 % of the
    // server's samples in a perf profile of an unwarmed run).
    var warmUp = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
    {
        while (warmUp.Elapsed < TimeSpan.FromSeconds(quick ? 3 : 10)) await PostAsync(http, threads[w], "warm-up");
    }));
    var latencies = new List<double>[workers];
    var started = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
    {
        latencies[w] = [];
        for (var i = 0; i < total / workers; i++)
        {
            var t = Stopwatch.StartNew();
            await PostAsync(http, threads[w], $"message {i}");
            latencies[w].Add(t.Elapsed.TotalMilliseconds);
        }
    }));
    var seconds = started.Elapsed.TotalSeconds;
    var all = latencies.SelectMany(l => l).ToList();
    Report("ingest", new()
    {
        ["messages"] = all.Count,
        ["messages_per_s"] = Math.Round(all.Count / seconds),
        ["latency_p50_ms"] = Math.Round(Percentile(all, 0.50), 2),
        ["latency_p99_ms"] = Math.Round(Percentile(all, 0.99), 2),
    });
}

if (Wants("resume"))
{
    var tokens = quick ? 20_000 : 100_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, tokens, 0);
    using var http = NewClient(parley.Address);
    var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
    await StreamOneRunAsync(http, thread);
    var middle = tokens / 2;
    var started = Stopwatch.StartNew();
    using var response = await OpenAsync(http, $"/api/v1/threads/{thread}/stream?events=all", middle.ToString(CultureInfo.InvariantCulture));
    double firstMs = 0;
    var replayed = 0;
    await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
    {
        if (replayed++ == 0) firstMs = started.Elapsed.TotalMilliseconds;
        if (item.EventType == "run.completed") break;
    }
    var seconds = started.Elapsed.TotalSeconds;
    Report("resume", new()
    {
        ["log_events"] = tokens + 6,
        ["replayed"] = replayed,
        ["first_event_ms"] = Math.Round(firstMs, 2),
        ["replay_events_per_s"] = Math.Round(replayed / seconds),
        ["ratio_to_ceiling"] = Math.Round(replayed / seconds / ceiling, 3),
    });
}

Console.WriteLine();
Console.WriteLine($"{"scenario",-22} figures");
foreach (var (name, figures) in results)
    Console.WriteLine($"{name,-22} {string.Join("  ", figures.Select(f => $"{f.Key}={f.Value.ToString(CultureInfo.InvariantCulture)}"))}");
return 0;

static HttpClient NewClient(Uri address) => new(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
{
    BaseAddress = address,
    Timeout = TimeSpan.FromMinutes(10),
    DefaultRequestHeaders = { { "X-API-Key", ParleyProcess.ApiKey } },
};

static async Task<string> CreateThreadAsync(HttpClient http, Guid agent)
{
    var response = await http.PostAsJsonAsync("/api/v1/threads/web", new { agentId = agent });
    response.EnsureSuccessStatusCode();
    return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("thread").GetProperty("id").GetString()!;
}

static async Task PostAsync(HttpClient http, string thread, string text) =>
    (await http.PostAsJsonAsync($"/api/v1/threads/{thread}/messages", new { message = text })).EnsureSuccessStatusCode();

static async Task<HttpResponseMessage> OpenAsync(HttpClient http, string path, string? lastEventId)
{
    var request = new HttpRequestMessage(HttpMethod.Get, path);
    if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
    var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    response.EnsureSuccessStatusCode();
    return response;
}

static async Task<int> CountUntilAsync(HttpResponseMessage response, Func<SseItem<string>, bool> until, Func<SseItem<string>, bool> counts)
{
    var n = 0;
    await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
    {
        if (counts(item)) n++;
        if (until(item)) break;
    }
    return n;
}

static async Task<int> CountEventsAsync(HttpClient http, string path, Func<SseItem<string>, bool> until, CancellationToken cancellationToken)
{
    using var response = await OpenAsync(http, path, null);
    var n = 0;
    await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync(cancellationToken)).EnumerateAsync(cancellationToken))
    {
        n++;
        if (until(item)) break;
    }
    return n;
}

// Opens the thread's stream, posts one message, and reads that run to its end.
static async Task<RunFigures> StreamOneRunAsync(HttpClient http, string thread)
{
    using var response = await OpenAsync(http, $"/api/v1/threads/{thread}/stream?events=all", null);
    var items = SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync().GetAsyncEnumerator();
    var clock = Stopwatch.StartNew();
    await PostAsync(http, thread, "go");
    double first = -1, last = 0, previous = 0;
    var deltas = 0;
    var gaps = new List<double>();
    var failed = false;
    while (await items.MoveNextAsync())
    {
        var item = items.Current;
        var now = clock.Elapsed.TotalMilliseconds;
        if (item.EventType == "message.delta")
        {
            if (deltas++ == 0) first = now;
            else gaps.Add(now - previous);
            previous = last = now;
        }
        else if (item.EventType == "run.failed") { failed = true; break; }
        else if (item.EventType == "run.completed") break;
    }
    await items.DisposeAsync();
    return new RunFigures(deltas, first, Math.Max(0.001, (last - first) / 1000), gaps, failed);
}

static double Percentile(List<double> values, double p)
{
    if (values.Count == 0) return 0;
    var sorted = values.Order().ToList();
    return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}

static string FindRepositoryRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Parley.slnx"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}

internal sealed record RunFigures(int Deltas, double FirstDeltaMs, double StreamSeconds, List<double> Gaps, bool Failed);
