using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;
using static Parley.Bench.BenchClient;
using Parley.Bench;

// Usage: dotnet run -c Release --project bench/Parley.Bench -- [--scenario NAME|all] [--quick] [--concurrency C] [--idle-seconds S] [--server-dll PATH]
//        [--nodes 2 --postgres CONNECTION-STRING --redis CONFIGURATION]   (two nodes on PostgreSQL + Redis, Cluster.cs)
//        --serve-ceiling PORT   (only the ceiling endpoint, on 127.0.0.1:PORT: the floors' own process, CeilingProcess)
// Scenarios: ceiling, single-stream, concurrent-runs, fan-out, idle-streams, ingest, resume (docs/benchmarks.md).
var arguments = args.ToList();
string? Option(string name) => arguments.IndexOf(name) is var i and >= 0 && i + 1 < arguments.Count ? arguments[i + 1] : null;
if (Option("--serve-ceiling") is { } ceilingPort)
{
    // The ceiling in a process of its own, for the floors of the memory and latency scenarios (CeilingProcess).
    await Ceiling.ServeAsync(int.Parse(ceilingPort, CultureInfo.InvariantCulture));
    return 0;
}
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

// Adds the idle trims the server ran since it started (Parley:Memory:TrimWhenIdle, a compacting collection once the
// server idles after growing): a scenario that keeps the server busy should read 0.
static async Task<Dictionary<string, double>> WithIdleTrimsAsync(ParleyProcess parley, Dictionary<string, double> figures)
{
    figures["server_idle_trims"] = IdleTrims(await parley.ScrapeAsync()).Count;
    return figures;
}

// The server's idle trims (the parley.memory.idle_trim_duration histogram) since it started, from one /metrics scrape.
static Histogram IdleTrims(string metrics) => Histogram.Between("", metrics, "parley_memory_idle_trim_duration_milliseconds");
Console.Error.WriteLine($"Parley.Bench: {Environment.ProcessorCount} cores, server {serverDll}, {(quick ? "quick" : "full")} sizes");

// The ceiling is measured in the same run, for the same event size, so every throughput is also a ratio to it. The
// concurrent scenarios also get a ceiling of their own shape: C streams of 200 events each, read at once.
double ceiling;
var concurrentCeilings = new Dictionary<int, double>();
await using (var ceilingServer = await Ceiling.StartAsync())
{
    // Warm, as every Parley server is before it is measured: a first pass of n events warms both sides up (JIT, the
    // connection) and is not counted; then the median of three passes of 3n. Measured cold, in one pass of n events
    // (a quarter of a second), this read 362k-538k events/s on an idle machine where warm medians read 0.69-1.08M
    // (docs/benchmarks.md, "The ceiling, measured warm").
    var n = quick ? 20_000 : 100_000;
    using var http = NewClient(ceilingServer.Address);
    await CountEventsAsync(http, $"/sse?n={n}", _ => false, CancellationToken.None);
    var passes = new List<double>();
    var counted = 0;
    for (var pass = 0; pass < 3; pass++)
    {
        var stopwatch = Stopwatch.StartNew();
        var count = await CountEventsAsync(http, $"/sse?n={3 * n}", _ => false, CancellationToken.None);
        passes.Add(count / stopwatch.Elapsed.TotalSeconds);
        counted += count;
    }
    passes.Sort();
    ceiling = passes[1];
    Report("ceiling", new()
    {
        ["events"] = counted, // all three passes
        ["events_per_s"] = Math.Round(ceiling),
        ["slowest_pass_events_per_s"] = Math.Round(passes[0]),
        ["fastest_pass_events_per_s"] = Math.Round(passes[2]),
    });
    if (Wants("concurrent-runs"))
        foreach (var c in ConcurrencyLevels())
        {
            await Task.WhenAll(Enumerable.Range(0, c).Select(_ => CountEventsAsync(http, "/sse?n=200", _ => false, CancellationToken.None)));
            var started = Stopwatch.StartNew();
            var counts = await Task.WhenAll(Enumerable.Range(0, c).Select(_ => CountEventsAsync(http, "/sse?n=200", _ => false, CancellationToken.None)));
            concurrentCeilings[c] = counts.Sum() / started.Elapsed.TotalSeconds;
            Report($"ceiling-{c}", new() { ["streams"] = c, ["events"] = counts.Sum(), ["events_per_s"] = Math.Round(concurrentCeilings[c]) });
        }
}
int[] ConcurrencyLevels() => Option("--concurrency") is { } only ? [int.Parse(only, CultureInfo.InvariantCulture)] : quick ? [100] : [100, 1_000];

// Two-node mode (Cluster.cs): the same scenarios across two nodes on PostgreSQL + Redis.
if (Option("--nodes") is { } nodes && nodes != "1")
    return await Cluster.RunAsync(arguments, serverDll, quick, ceiling, scenario, Report);

if (Wants("single-stream"))
{
    var tokens = quick ? 2_000 : 10_000;
    // Unpaced: the model yields all deltas at once, so this measures throughput; a delta's delay then includes waiting
    // behind the ones before it. Each delta carries the model's yield time (Stopwatch ticks, shared by the processes).
    await using (var parley = await ParleyProcess.StartAsync(serverDll, tokens, 0, Stamps.EveryToken))
    {
        using var http = NewClient(parley.Address);
        await WarmUpAsync(http, workers: 2, TimeSpan.FromSeconds(quick ? 2 : 5));
        // One reply streams in 10–20 ms, too short to time once against a noisy machine (one run read 1.48× the
        // ceiling, the other 0.69×) or to read the server's CPU clock by (it advances in 10 ms steps): SingleStreamReplies
        // replies, each on a thread of its own, the median reported with the slowest and fastest, and CPU over all.
        var cpu = parley.CpuTime();
        const int SingleStreamReplies = 5;
        var runs = new List<RunFigures>();
        for (var i = 0; i < SingleStreamReplies; i++)
            runs.Add(await StreamOneRunAsync(http, await CreateThreadAsync(http, ParleyProcess.StreamingAgent)));
        var serverCpu = parley.CpuTime() - cpu;
        var byRate = runs.OrderBy(r => r.Deltas / r.StreamSeconds).ToList();
        var run = byRate[byRate.Count / 2];
        Report("single-stream", await WithIdleTrimsAsync(parley, new()
        {
            ["deltas"] = run.Deltas,
            ["replies"] = runs.Count,
            ["events_per_s"] = Math.Round(run.Deltas / run.StreamSeconds),
            ["slowest_reply_events_per_s"] = Math.Round(byRate[0].Deltas / byRate[0].StreamSeconds),
            ["fastest_reply_events_per_s"] = Math.Round(byRate[^1].Deltas / byRate[^1].StreamSeconds),
            ["ratio_to_ceiling"] = Math.Round(run.Deltas / run.StreamSeconds / ceiling, 3),
            ["post_to_first_delta_ms"] = Math.Round(run.FirstDeltaMs, 1),
            ["burst_delta_delay_p50_ms"] = Math.Round(Percentile(run.Delays, 0.50), 3),
            ["burst_delta_delay_p99_ms"] = Math.Round(Percentile(run.Delays, 0.99), 3),
            ["server_cpu_us_per_event"] = Math.Round(serverCpu.TotalSeconds * 1e6 / Math.Max(1, runs.Sum(r => r.Deltas)), 1),
        }));
    }
    // Paced like a model (one delta per millisecond, faster than real models): the delay from the model's yield to the
    // client's parse is what Parley adds to each token.
    await using (var parley = await ParleyProcess.StartAsync(serverDll, tokens, 1, Stamps.EveryToken))
    {
        using var http = NewClient(parley.Address);
        await WarmUpAsync(http, workers: 2, TimeSpan.FromSeconds(quick ? 2 : 5));
        var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
        var run = await StreamOneRunAsync(http, thread);
        Report("single-stream-paced", await WithIdleTrimsAsync(parley, new()
        {
            ["deltas"] = run.Deltas,
            ["token_delay_ms"] = 1,
            ["events_per_s"] = Math.Round(run.Deltas / run.StreamSeconds),
            ["delta_delay_p50_ms"] = Math.Round(Percentile(run.Delays, 0.50), 3),
            ["delta_delay_p99_ms"] = Math.Round(Percentile(run.Delays, 0.99), 3),
            ["delta_delay_max_ms"] = Math.Round(run.Delays.DefaultIfEmpty(0).Max(), 3),
        }));
    }
}

if (Wants("concurrent-runs"))
{
    foreach (var c in ConcurrencyLevels())
    {
        await using var parley = await ParleyProcess.StartAsync(serverDll, 200, 0);
        using var http = NewClient(parley.Address);
        await WarmUpAsync(http, workers: 50, TimeSpan.FromSeconds(quick ? 3 : 10));
        var threads = await Task.WhenAll(Enumerable.Range(0, c).Select(_ => CreateThreadAsync(http, ParleyProcess.StreamingAgent)));
        await Task.Delay(1500); // let the Prometheus exporter's scrape cache expire
        var metricsBefore = await parley.ScrapeAsync();
        var cpu = parley.CpuTime();
        var benchCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var hostBefore = HostCpuSample.Read();
        var started = Stopwatch.StartNew();
        var runs = await Task.WhenAll(threads.Select(t => StreamOneRunAsync(http, t)));
        var seconds = started.Elapsed.TotalSeconds;
        var hostSteal = HostCpuSample.StealPercent(hostBefore, HostCpuSample.Read());
        var serverCpu = (parley.CpuTime() - cpu).TotalSeconds;
        var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - benchCpu).TotalSeconds;
        await Task.Delay(1500);
        var metricsAfter = await parley.ScrapeAsync();
        var deltas = runs.Sum(r => r.Deltas);
        var queueWait = Histogram.Between(metricsBefore, metricsAfter, "parley_run_queue_wait_milliseconds");
        var firstDelta = Histogram.Between(metricsBefore, metricsAfter, "parley_run_time_to_first_delta_milliseconds");
        Report($"concurrent-runs-{c}", await WithIdleTrimsAsync(parley, new()
        {
            ["threads"] = c,
            ["deltas"] = deltas,
            ["events_per_s"] = Math.Round(deltas / seconds),
            ["ratio_to_ceiling"] = Math.Round(deltas / seconds / ceiling, 3),
            ["ratio_to_ceiling_same_shape"] = Math.Round(deltas / seconds / concurrentCeilings[c], 3),
            ["post_to_first_delta_p50_ms"] = Math.Round(Percentile(runs.Select(r => r.FirstDeltaMs).ToList(), 0.50), 1),
            ["post_to_first_delta_p99_ms"] = Math.Round(Percentile(runs.Select(r => r.FirstDeltaMs).ToList(), 0.99), 1),
            ["server_queue_wait_p50_ms_le"] = queueWait.Quantile(0.50),
            ["server_queue_wait_p99_ms_le"] = queueWait.Quantile(0.99),
            ["server_start_to_first_delta_p50_ms_le"] = firstDelta.Quantile(0.50),
            ["server_start_to_first_delta_p99_ms_le"] = firstDelta.Quantile(0.99),
            ["server_cpu_cores"] = Math.Round(serverCpu / seconds, 2),
            ["server_cpu_us_per_event"] = Math.Round(serverCpu * 1e6 / Math.Max(1, deltas), 1),
            ["bench_cpu_cores"] = Math.Round(clientCpu / seconds, 2),
            ["host_steal_percent"] = hostSteal,
            ["errors"] = runs.Count(r => r.Failed),
        }));
    }
}

// Sustained load at a model's pace: C threads, each in a loop — post a message, read its 200-delta reply to the end,
// post again — with the model yielding a delta every 25 ms (40 tokens/s per reply, 40,000 deltas/s offered at C=1,000),
// so about C runs stream at any moment. Clients start at random moments within one reply's length, and only the
// steady-state window is measured. Each first delta carries the moment the model was called and the moment it yielded
// (ScriptedTimestamps), so the client splits POST → first delta into the server's part (POST → model called, plus
// yield → client parse) and the model's (its 25 ms pause before the first token). Only the first delta is stamped: a
// stamp on every delta made each reply, and the history each later turn reads and holds, ≈ 2.7× as long.
if (Wants("concurrent-runs-paced"))
{
    var c = Option("--concurrency") is { } only ? int.Parse(only, CultureInfo.InvariantCulture) : quick ? 200 : 1_000;
    const double TokenDelayMs = 25;
    const int Tokens = 200;
    await using var parley = await ParleyProcess.StartAsync(serverDll, Tokens, TokenDelayMs, Stamps.FirstToken);
    using var http = NewClient(parley.Address);
    await WarmUpAsync(http, workers: 200, TimeSpan.FromSeconds(quick ? 5 : 10));
    var threads = await Task.WhenAll(Enumerable.Range(0, c).Select(_ => CreateThreadAsync(http, ParleyProcess.StreamingAgent)));
    var ramp = TimeSpan.FromMilliseconds(Tokens * TokenDelayMs * 1.5);
    var window = TimeSpan.FromSeconds(quick ? 10 : 30);
    await Task.Delay(1500); // let the Prometheus exporter's scrape cache expire
    var clock = Stopwatch.StartNew();
    var metricsBefore = (string?)null;
    var scrapedBefore = 0L;
    double cpuBefore = 0, benchCpuBefore = 0;
    HostCpuSample? hostBefore = null;
    var measuring = Task.Delay(ramp).ContinueWith(async _ =>
    {
        cpuBefore = parley.CpuTime().TotalSeconds;
        hostBefore = HostCpuSample.Read();
        benchCpuBefore = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        metricsBefore = await parley.ScrapeAsync();
        scrapedBefore = Stopwatch.GetTimestamp();
    }).Unwrap();
    long delivered = 0;
    var errors = 0;
    var firstDeltaMs = new System.Collections.Concurrent.ConcurrentBag<double>();
    var postResponseMs = new System.Collections.Concurrent.ConcurrentBag<double>();
    // Each measured first token that carries the model's stamps: when its POST went (UTC, to line it up with a trace of
    // the server), its server-added time and the two parts of it, and the POST's own answer time.
    var firstTokens = new System.Collections.Concurrent.ConcurrentBag<(DateTime PostedUtc, double ServerAdded, double ToCalled, double ToParse, double PostResponse)>();
    bool InWindow(TimeSpan t) => t >= ramp && t < ramp + window;
    await Task.WhenAll(threads.Select(async thread =>
    {
        await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * Tokens * TokenDelayMs));
        using var response = await OpenAsync(http, $"/api/v1/threads/{thread}/stream?events=all", null);
        await using var items = SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync().GetAsyncEnumerator();
        while (clock.Elapsed < ramp + window)
        {
            var postedAt = clock.Elapsed;
            var postedUtc = DateTime.UtcNow;
            var posted = Stopwatch.GetTimestamp();
            await PostAsync(http, thread, "go");
            var answered = Stopwatch.GetTimestamp();
            var first = true;
            while (await items.MoveNextAsync())
            {
                var item = items.Current;
                if (item.EventType == "message.delta")
                {
                    var now = clock.Elapsed;
                    if (InWindow(now)) Interlocked.Increment(ref delivered);
                    if (!first) continue;
                    first = false;
                    if (!InWindow(postedAt)) continue;
                    var parsed = Stopwatch.GetTimestamp();
                    firstDeltaMs.Add(Stopwatch.GetElapsedTime(posted, parsed).TotalMilliseconds);
                    postResponseMs.Add(Stopwatch.GetElapsedTime(posted, answered).TotalMilliseconds);
                    if (FirstDeltaStamps(item.Data) is { } stamps)
                    {
                        var toCalled = Stopwatch.GetElapsedTime(posted, stamps.Called).TotalMilliseconds;
                        var toParse = Stopwatch.GetElapsedTime(stamps.Yielded, parsed).TotalMilliseconds;
                        firstTokens.Add((postedUtc, toCalled + toParse, toCalled, toParse, Stopwatch.GetElapsedTime(posted, answered).TotalMilliseconds));
                    }
                }
                else if (item.EventType == "run.failed") { Interlocked.Increment(ref errors); break; }
                else if (item.EventType == "run.completed") break;
            }
        }
    }));
    await measuring;
    var serverCpu = parley.CpuTime().TotalSeconds - cpuBefore;
    var benchCpu = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - benchCpuBefore;
    var hostSteal = HostCpuSample.StealPercent(hostBefore, HostCpuSample.Read());
    var drained = clock.Elapsed - ramp; // CPU was read until every client stopped: a little past the window
    await Task.Delay(1500);
    var metricsAfter = await parley.ScrapeAsync();
    var betweenScrapes = Stopwatch.GetElapsedTime(scrapedBefore);
    double GrownBetweenScrapes(string counter) => MetricSum(metricsAfter, counter) - MetricSum(metricsBefore!, counter);
    double CollectedBetweenScrapes(string generation) => GcCollections(metricsAfter, generation) - GcCollections(metricsBefore!, generation);
    var queueWait = Histogram.Between(metricsBefore!, metricsAfter, "parley_run_queue_wait_milliseconds");
    var normalWriteWait = Histogram.Between(metricsBefore!, metricsAfter, "parley_store_write_wait_milliseconds", "priority=\"normal\"");
    var bulkWriteWait = Histogram.Between(metricsBefore!, metricsAfter, "parley_store_write_wait_milliseconds", "priority=\"bulk\"");
    var walRestarts = Histogram.Between(metricsBefore!, metricsAfter, "parley_store_wal_restart_duration_milliseconds");
    // ASP.NET Core's own request duration (headers read → response complete, in seconds) of the message POSTs.
    var postDuration = Histogram.Between(metricsBefore!, metricsAfter, "http_server_request_duration_seconds",
        "http_route=\"/api/v1/threads/{threadId}/messages\"", "http_request_method=\"POST\"");
    static double Milliseconds(double seconds) => seconds < 0 || seconds >= 1e9 ? seconds : Math.Round(seconds * 1000, 1);
    List<double> serverAddedMs = [.. firstTokens.Select(t => t.ServerAdded)], postToCalledMs = [.. firstTokens.Select(t => t.ToCalled)],
        yieldToParseMs = [.. firstTokens.Select(t => t.ToParse)];
    // PARLEY_BENCH_DUMP_FIRST_TOKENS: every measured first token, in the order of its POST, to see when the slow ones came
    // (e.g. beside a GC trace): "<POST sent, UTC ISO 8601> <server-added ms> <POST → model called> <first yield → parse> <POST answered>".
    if (Environment.GetEnvironmentVariable("PARLEY_BENCH_DUMP_FIRST_TOKENS") is { Length: > 0 } dumpFirstTokens)
        await File.WriteAllLinesAsync(dumpFirstTokens, firstTokens.OrderBy(t => t.PostedUtc).Select(t => string.Create(CultureInfo.InvariantCulture,
            $"{t.PostedUtc:O} {t.ServerAdded:F2} {t.ToCalled:F2} {t.ToParse:F2} {t.PostResponse:F2}")));
    var floor = await MeasurePacedFloorAsync(c, Tokens, TokenDelayMs, ramp, TimeSpan.FromSeconds(quick ? 5 : 10));
    Report($"concurrent-runs-paced-{c}", new()
    {
        ["threads"] = c,
        // Read before the floor's measurement, during which this server idles (and may trim): 0 if none came in the window.
        ["server_idle_trims"] = IdleTrims(metricsAfter).Count,
        ["token_delay_ms"] = TokenDelayMs,
        ["window_s"] = window.TotalSeconds,
        ["deltas_in_window"] = delivered,
        ["events_per_s"] = Math.Round(delivered / window.TotalSeconds),
        ["offered_events_per_s"] = Math.Round(c * 1000 / TokenDelayMs),
        ["runs_measured"] = firstDeltaMs.Count,
        ["post_to_first_delta_p50_ms"] = Math.Round(Percentile([.. firstDeltaMs], 0.50), 1),
        ["post_to_first_delta_p99_ms"] = Math.Round(Percentile([.. firstDeltaMs], 0.99), 1),
        ["server_added_p50_ms"] = Math.Round(Percentile(serverAddedMs, 0.50), 2),
        ["server_added_p90_ms"] = Math.Round(Percentile(serverAddedMs, 0.90), 2),
        ["server_added_p95_ms"] = Math.Round(Percentile(serverAddedMs, 0.95), 2),
        ["server_added_p99_ms"] = Math.Round(Percentile(serverAddedMs, 0.99), 2),
        // The two parts of the server-added time: the POST sent → the model called (the message's and, before the model
        // is called, the run's bookkeeping), and the first delta yielded → parsed by the client (its commit and delivery).
        ["post_to_model_called_p50_ms"] = Math.Round(Percentile(postToCalledMs, 0.50), 2),
        ["post_to_model_called_p99_ms"] = Math.Round(Percentile(postToCalledMs, 0.99), 2),
        // The POST's own answer (the message stored, the run queued): what of POST → model called is the request's.
        ["post_response_p50_ms"] = Math.Round(Percentile([.. postResponseMs], 0.50), 2),
        ["post_response_p99_ms"] = Math.Round(Percentile([.. postResponseMs], 0.99), 2),
        ["server_post_duration_p50_ms_le"] = Milliseconds(postDuration.Quantile(0.50)),
        ["server_post_duration_p99_ms_le"] = Milliseconds(postDuration.Quantile(0.99)),
        ["first_yield_to_parse_p50_ms"] = Math.Round(Percentile(yieldToParseMs, 0.50), 2),
        ["first_yield_to_parse_p99_ms"] = Math.Round(Percentile(yieldToParseMs, 0.99), 2),
        ["server_queue_wait_p99_ms_le"] = queueWait.Quantile(0.99),
        // How long the store's writes waited for its writer thread (three normal ones come before a reply's first token).
        ["server_normal_write_wait_p50_ms_le"] = normalWriteWait.Quantile(0.50),
        ["server_normal_write_wait_p99_ms_le"] = normalWriteWait.Quantile(0.99),
        ["server_bulk_write_wait_p99_ms_le"] = bulkWriteWait.Quantile(0.99),
        // WAL restarts hold the writer thread: how many ran from the first scrape to the last, and how long.
        ["server_wal_restarts"] = walRestarts.Count,
        ["server_wal_restarts_busy"] = Histogram.Between(metricsBefore!, metricsAfter, "parley_store_wal_restart_duration_milliseconds", "outcome=\"busy\"").Count,
        ["server_wal_restart_p50_ms_le"] = walRestarts.Quantile(0.50),
        ["server_wal_restart_max_ms_le"] = walRestarts.Quantile(1.0),
        ["server_cpu_cores"] = Math.Round(serverCpu / drained.TotalSeconds, 2),
        ["bench_cpu_cores"] = Math.Round(benchCpu / drained.TotalSeconds, 2),
        // The share of the machine's CPU time the hypervisor gave to other guests over the same span (HostCpuSample).
        ["host_steal_percent"] = hostSteal,
        // The server's garbage collections between the two scrapes (the window, the clients' last replies and 1.5 s of
        // quiet): each collection, counted under the oldest generation it collected, pauses the threads that carry first
        // tokens. The allocation rate is over the same interval, so ≈ 5 % below the window's own.
        ["server_gc_gen0_in_window"] = CollectedBetweenScrapes("gen0"),
        ["server_gc_gen1_in_window"] = CollectedBetweenScrapes("gen1"),
        ["server_gc_gen2_in_window"] = CollectedBetweenScrapes("gen2"),
        ["server_gc_pause_ms_in_window"] = Math.Round(GrownBetweenScrapes("dotnet_gc_pause_time_seconds_total") * 1000),
        ["server_allocated_mb_per_s"] = Math.Round(GrownBetweenScrapes("dotnet_gc_heap_total_allocated_bytes_total") / 1048576.0 / betweenScrapes.TotalSeconds, 1),
        ["errors"] = errors,
        // The floor of the same load on the ceiling endpoint (its own process): C streams of paced events, each stamped
        // as written, read by the same client; write → parse of the first event of each stream and of every event.
        ["ceiling_first_event_delay_p50_ms"] = floor.FirstP50,
        ["ceiling_first_event_delay_p99_ms"] = floor.FirstP99,
        ["ceiling_event_delay_p99_ms"] = floor.AllP99,
        ["ceiling_events_per_s"] = floor.EventsPerSecond,
        ["ceiling_cpu_cores"] = floor.Cores,
        ["ceiling_host_steal_percent"] = floor.StealPercent,
        ["ceiling_errors"] = floor.Errors,
    });
}

if (Wants("fan-out"))
{
    var subscribers = quick ? 200 : 1_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 200, 0);
    using var http = NewClient(parley.Address);
    await WarmUpAsync(http, workers: 20, TimeSpan.FromSeconds(quick ? 3 : 5));
    var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
    var streams = await Task.WhenAll(Enumerable.Range(0, subscribers).Select(_ => OpenAsync(http, $"/api/v1/threads/{thread}/stream?events=all", null)));
    var cpu = parley.CpuTime();
    var figures = await MeasureFanOutAsync(streams, () => PostAsync(http, thread, "go"), 200, ceiling);
    figures["server_cpu_us_per_event"] = Math.Round((parley.CpuTime() - cpu).TotalSeconds * 1e6 / Math.Max(1, figures["delivered"]), 1);
    Report("fan-out", await WithIdleTrimsAsync(parley, figures));
}

if (Wants("idle-streams"))
{
    var count = quick ? 1_000 : 10_000;
    // Heartbeats every 2 s, so that every stream sends several while it is measured.
    const int heartbeatSeconds = 2;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 10, 0, heartbeatSeconds: heartbeatSeconds);
    using var http = NewClient(parley.Address);
    var threads = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => CreateThreadAsync(http, ParleyProcess.SilentAgent)));
    var streams = new List<HttpResponseMessage>(count);
    var idleSeconds = int.Parse(Option("--idle-seconds") ?? "10", CultureInfo.InvariantCulture);
    TimeSpan cpuBefore = default;
    double allocatedBefore = 0, allocatedIdle = 0;
    var hold = await HoldIdleStreamsAsync(http, j => $"/api/v1/threads/{threads[j % threads.Length]}/stream", count, idleSeconds, parley.ResidentBytes, streams,
        afterBaseline: async () => allocatedBefore = MetricSum(await parley.ScrapeAsync(), "dotnet_gc_heap_total_allocated_bytes_total"),
        beforeSecondHold: async () =>
        {
            cpuBefore = parley.CpuTime();
            allocatedIdle = MetricSum(await parley.ScrapeAsync(), "dotnet_gc_heap_total_allocated_bytes_total");
        },
        // The fresh server is read after 8 s of quiet, past its idle trim's 5 s, so that a trim of what its start left
        // (when that grew it by 32 MiB) comes before the baseline instead of counting as the streams' saving.
        settleMs: 8000);
    var cpu = (parley.CpuTime() - cpuBefore).TotalSeconds / idleSeconds;
    var metrics = await parley.ScrapeAsync();
    var heap = MetricSum(metrics, "dotnet_gc_last_collection_heap_size_bytes");
    var open = MetricSum(metrics, "parley_streams_open");
    var allocatedAfter = MetricSum(metrics, "dotnet_gc_heap_total_allocated_bytes_total");
    var trims = IdleTrims(metrics);
    foreach (var s in streams) s.Dispose();

    // The floor: the same streams, opened and held the same way, on the ceiling's minimal Kestrel endpoint in a process
    // of its own with the same GC — what Kestrel, the runtime and this machine cost per stream with no Parley code.
    IdleHold floor;
    await using (var ceilingProcess = await CeilingProcess.StartAsync())
    {
        using var ceilingHttp = NewClient(ceilingProcess.Address);
        var ceilingStreams = new List<HttpResponseMessage>(count);
        floor = await HoldIdleStreamsAsync(ceilingHttp, _ => $"/idle?heartbeatSeconds={heartbeatSeconds}", count, idleSeconds, ceilingProcess.ResidentBytes, ceilingStreams);
        foreach (var s in ceilingStreams) s.Dispose();
    }
    Report("idle-streams", new()
    {
        ["streams"] = streams.Count,
        ["dropped"] = hold.Dropped,
        ["bytes_per_stream"] = hold.BytesPerStream,
        ["marginal_bytes_per_stream"] = hold.MarginalBytesPerStream,
        ["server_rss_mb"] = Math.Round(hold.After / 1048576.0, 1),
        ["server_open_streams"] = open,
        ["server_gc_heap_mb"] = Math.Round(heap / 1048576.0, 1),
        // What the GC holds beyond the live streams moves a run's figure by several KB per stream: the memory it has
        // committed, and whether a full (gen2) collection ran after the streams opened (the server's counts since start).
        // Allocated from before the first stream to the end, per stream: opening it, both holds (a few bytes per
        // heartbeat, the figure below) and the /metrics scrapes.
        ["server_allocated_bytes_per_stream"] = Math.Round((allocatedAfter - allocatedBefore) / Math.Max(1, streams.Count)),
        // Allocated while every stream was open and idle, per stream and heartbeat.
        ["server_allocated_bytes_per_heartbeat"] = Math.Round((allocatedAfter - allocatedIdle) / Math.Max(1, streams.Count) / ((double)idleSeconds / heartbeatSeconds)),
        ["server_kestrel_pooled_mb"] = Math.Round(MetricSum(metrics, "aspnetcore_memory_pool_pooled_bytes") / 1048576.0, 1),
        ["server_gc_committed_mb"] = Math.Round(MetricSum(metrics, "dotnet_gc_last_collection_memory_committed_size_bytes") / 1048576.0, 1),
        ["server_gc_gen0_collections"] = GcCollections(metrics, "gen0"),
        ["server_gc_gen1_collections"] = GcCollections(metrics, "gen1"),
        ["server_gc_gen2_collections"] = GcCollections(metrics, "gen2"),
        // The idle trims the server ran since it started (Parley:Memory:TrimWhenIdle: a compacting collection that gives
        // the memory the GC keeps for allocations back once the server idles), and the longest one's pause.
        ["server_idle_trims"] = trims.Count,
        ["server_idle_trim_max_ms_le"] = trims.Quantile(1.0),
        ["idle_cpu_cores"] = Math.Round(cpu, 4),
        ["ceiling_bytes_per_stream"] = floor.BytesPerStream,
        ["ceiling_marginal_bytes_per_stream"] = floor.MarginalBytesPerStream,
        ["ceiling_dropped"] = floor.Dropped,
    });
}

if (Wants("ingest"))
{
    var total = quick ? 2_000 : 10_000;
    const int workers = 32;
    await using var parley = await ParleyProcess.StartAsync(serverDll, 10, 0);
    using var http = NewClient(parley.Address);
    var threads = await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => CreateThreadAsync(http, ParleyProcess.SilentAgent)));
    // Warm-up, not measured: a fresh server spends its first seconds in the JIT (tiered compilation was 15–44 % of the
    // server's samples in perf profiles of runs warmed for a fixed 10 s on a loaded machine). As for the other
    // scenarios: post for at least 10 s, then until the JIT settles (fewer than 50 methods compiled in 2 s), at most 60 s.
    await WarmUpAsync(http, workers, TimeSpan.FromSeconds(quick ? 3 : 10), w => PostAsync(http, threads[w], "warm-up"));
    var latencies = new List<double>[workers];
    var cpu = parley.CpuTime();
    var benchCpu = Process.GetCurrentProcess().TotalProcessorTime;
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
    var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - benchCpu).TotalSeconds;
    var all = latencies.SelectMany(l => l).ToList();
    Report("ingest", await WithIdleTrimsAsync(parley, new()
    {
        ["messages"] = all.Count,
        ["messages_per_s"] = Math.Round(all.Count / seconds),
        ["latency_p50_ms"] = Math.Round(Percentile(all, 0.50), 2),
        ["latency_p99_ms"] = Math.Round(Percentile(all, 0.99), 2),
        ["server_cpu_cores"] = Math.Round((parley.CpuTime() - cpu).TotalSeconds / seconds, 2),
        ["server_cpu_us_per_message"] = Math.Round((parley.CpuTime() - cpu).TotalSeconds * 1e6 / all.Count, 1),
        ["bench_cpu_cores"] = Math.Round(clientCpu / seconds, 2),
        ["bench_cpu_us_per_message"] = Math.Round(clientCpu * 1e6 / all.Count, 1),
    }));
}

if (Wants("resume"))
{
    var tokens = quick ? 20_000 : 100_000;
    await using var parley = await ParleyProcess.StartAsync(serverDll, tokens, 0);
    using var http = NewClient(parley.Address);
    var thread = await CreateThreadAsync(http, ParleyProcess.StreamingAgent);
    await StreamOneRunAsync(http, thread);
    Report("resume", await WithIdleTrimsAsync(parley, await MeasureResumeAsync(http, thread, tokens, ceiling)));
}

Console.WriteLine();
Console.WriteLine($"{"scenario",-22} figures");
foreach (var (name, figures) in results)
    Console.WriteLine($"{name,-22} {string.Join("  ", figures.Select(f => $"{f.Key}={f.Value.ToString(CultureInfo.InvariantCulture)}"))}");
return 0;

// The paced scenario's floor: C clients, each reading `/paced` streams of `tokens` events one every `delayMs` from the
// ceiling in its own process, back to back, for ramp + window; the delay from each event's write to its parse, for the
// events and the streams' first events parsed in the window, and the process's cores over the window. The stamp is read
// from the event's text without a JSON parser: the client does no more work per event than Parley's paced client.
static async Task<(double FirstP50, double FirstP99, double AllP99, double EventsPerSecond, double Cores, double StealPercent, int Errors)> MeasurePacedFloorAsync(
    int c, int tokens, double delayMs, TimeSpan ramp, TimeSpan window)
{
    await using var floor = await CeilingProcess.StartAsync();
    using var http = NewClient(floor.Address);
    var clock = Stopwatch.StartNew();
    var first = new System.Collections.Concurrent.ConcurrentBag<double>();
    var all = new System.Collections.Concurrent.ConcurrentBag<double>();
    var errors = 0;
    var cpu = Task.Run(async () =>
    {
        await Task.Delay(ramp);
        var before = floor.CpuTime();
        var hostBefore = HostCpuSample.Read();
        await Task.Delay(window);
        return (Cores: (floor.CpuTime() - before).TotalSeconds / window.TotalSeconds, Steal: HostCpuSample.StealPercent(hostBefore, HostCpuSample.Read()));
    });
    bool InWindow(TimeSpan t) => t >= ramp && t < ramp + window;
    await Task.WhenAll(Enumerable.Range(0, c).Select(async _ =>
    {
        await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * tokens * delayMs));
        while (clock.Elapsed < ramp + window)
        {
            try
            {
                using var response = await OpenAsync(http, $"/paced?n={tokens}&delayMs={delayMs.ToString(CultureInfo.InvariantCulture)}", null);
                var isFirst = true;
                await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
                {
                    var parsed = Stopwatch.GetTimestamp();
                    var wasFirst = isFirst;
                    isFirst = false;
                    if (!InWindow(clock.Elapsed) || WriteStamp(item.Data) is not { } written) continue;
                    var delay = Stopwatch.GetElapsedTime(written, parsed).TotalMilliseconds;
                    all.Add(delay);
                    if (wasFirst) first.Add(delay);
                }
            }
            catch (Exception)
            {
                Interlocked.Increment(ref errors);
                await Task.Delay(100); // a failing ceiling is not hammered; the loop still ends with the window
            }
        }
    }));
    var (cores, steal) = await cpu;
    return (Math.Round(Percentile([.. first], 0.50), 2), Math.Round(Percentile([.. first], 0.99), 2),
        Math.Round(Percentile([.. all], 0.99), 2), Math.Round(all.Count / window.TotalSeconds), Math.Round(cores, 2), steal, errors);

    // The ceiling's paced event ends its delta with "@<Stopwatch ticks>" (Ceiling.PacedEvent).
    static long? WriteStamp(string data)
    {
        var at = data.LastIndexOf('@');
        var end = at < 0 ? -1 : data.IndexOf('"', at);
        return end > at && long.TryParse(data.AsSpan(at + 1, end - at - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var stamp) ? stamp : null;
    }
}

// Opens `count` streams (path(j) for stream j, 200 at a time) in two halves, each held `idleSeconds` (plus 3 s to
// settle), and reads the process's RSS before (after `settleMs` of quiet), after the first half's hold and at the end; `afterBaseline` runs just
// after the first reading (the server's first /metrics scrape, whose cost the per-stream figure has always carried),
// `beforeSecondHold` once every stream is open. The growth from the first half to the second is each stream's own
// memory (the marginal figure); the growth over the fresh process also carries what the first streams cost once (the
// streaming code's JIT, thread-pool threads, pools), and a baseline that moved by ±0.5 KB per stream from run to run
// (the RSS of a fresh Parley before any stream: 123–131 MB).
static async Task<IdleHold> HoldIdleStreamsAsync(HttpClient http, Func<int, string> path, int count, int idleSeconds, Func<long> residentBytes,
    List<HttpResponseMessage> streams, Func<Task>? afterBaseline = null, Func<Task>? beforeSecondHold = null, int settleMs = 2000)
{
    var failed = 0;
    async Task OpenAndHoldAsync(int from, int to)
    {
        for (var i = from; i < to; i += 200)
        {
            var batch = await Task.WhenAll(Enumerable.Range(i, Math.Min(200, to - i)).Select(async j =>
            {
                try { return await OpenAsync(http, path(j), null); }
                catch (Exception) { Interlocked.Increment(ref failed); return null; }
            }));
            streams.AddRange(batch.Where(s => s is not null)!);
        }
        await Task.Delay(3000);
    }
    await Task.Delay(settleMs);
    var before = residentBytes();
    if (afterBaseline is not null) await afterBaseline();
    await OpenAndHoldAsync(0, count / 2);
    await Task.Delay(TimeSpan.FromSeconds(idleSeconds));
    var half = residentBytes();
    var halfStreams = streams.Count;
    await OpenAndHoldAsync(count / 2, count);
    if (beforeSecondHold is not null) await beforeSecondHold();
    await Task.Delay(TimeSpan.FromSeconds(idleSeconds));
    var after = residentBytes();
    return new IdleHold(after, failed,
        Math.Round((after - before) / (double)Math.Max(1, streams.Count)),
        Math.Round((after - half) / (double)Math.Max(1, streams.Count - halfStreams)));
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
    double first = -1, last = 0;
    var deltas = 0;
    var delays = new List<double>();
    var failed = false;
    while (await items.MoveNextAsync())
    {
        var item = items.Current;
        var now = clock.Elapsed.TotalMilliseconds;
        if (item.EventType == "message.delta")
        {
            if (deltas++ == 0) first = now;
            if (YieldStamp(item.Data) is { } stamp) delays.Add(Stopwatch.GetElapsedTime(stamp).TotalMilliseconds);
            last = now;
        }
        else if (item.EventType == "run.failed") { failed = true; break; }
        else if (item.EventType == "run.completed") break;
    }
    await items.DisposeAsync();
    if (Environment.GetEnvironmentVariable("PARLEY_BENCH_DUMP_DELAYS") is { Length: > 0 } dump)
        await File.WriteAllLinesAsync(dump, delays.Select(d => d.ToString("F3", CultureInfo.InvariantCulture)));
    return new RunFigures(deltas, first, Math.Max(0.001, (last - first) / 1000), delays, failed);
}

// The model's yield time carried by a scripted delta (" token12@<Stopwatch ticks>"), or null.
static long? YieldStamp(string data)
{
    var delta = JsonDocument.Parse(data).RootElement.GetProperty("delta").GetString() ?? "";
    var at = delta.LastIndexOf('@');
    return at >= 0 && long.TryParse(delta.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var stamp) ? stamp : null;
}

// The scripted model's first delta carries the moment it was called and the moment it yielded (" token1@<called>@<yielded>").
static (long Called, long Yielded)? FirstDeltaStamps(string data)
{
    var delta = JsonDocument.Parse(data).RootElement.GetProperty("delta").GetString() ?? "";
    var parts = delta.Split('@');
    return parts.Length == 3
        && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var called)
        && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var yielded)
        ? (called, yielded) : null;
}

// Puts the fresh server's hot paths through the JIT before anything is measured: a server runs for days, and an
// unwarmed run spent most of its time in tier-0 code and the JIT (perf, docs/benchmarks.md). Runs for at least
// <paramref name="duration"/>, then on until the server's JIT settles (fewer than 50 methods compiled in 2 s, from its
// System.Runtime metrics), at most 60 s. Each worker repeats <paramref name="work"/> (given the worker's index), by
// default: create a thread and stream one reply.
static async Task WarmUpAsync(HttpClient http, int workers, TimeSpan duration, Func<int, Task>? work = null)
{
    work ??= async _ => await StreamOneRunAsync(http, await CreateThreadAsync(http, ParleyProcess.StreamingAgent));
    var clock = Stopwatch.StartNew();
    var settled = false;
    var watcher = Task.Run(async () =>
    {
        await Task.Delay(duration);
        var previous = await CompiledMethodsAsync(http);
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(2000);
            var now = await CompiledMethodsAsync(http);
            if (now - previous < 50) break;
            previous = now;
        }
        settled = true;
    });
    await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
    {
        while (!settled) await work(w);
    }));
    await watcher;
    Console.Error.WriteLine($"Parley.Bench: warmed up for {clock.Elapsed.TotalSeconds:F0} s");
}

// The sum of the Prometheus samples whose line starts with prefix (a metric name, or a name with its labels).
static double MetricSum(string metrics, string prefix) => metrics.Split('\n')
    .Where(l => l.StartsWith(prefix, StringComparison.Ordinal) && (l.Length == prefix.Length || l[prefix.Length] is ' ' or '{' || prefix.EndsWith('}')))
    .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

static double GcCollections(string metrics, string generation) =>
    MetricSum(metrics, $"dotnet_gc_collections_total{{otel_scope_name=\"System.Runtime\",gc_heap_generation=\"{generation}\"}}");

static async Task<double> CompiledMethodsAsync(HttpClient http)
{
    return MetricSum(await http.GetStringAsync("/metrics"), "dotnet_jit_compiled_methods_total");
}

static string FindRepositoryRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Parley.slnx"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}

internal sealed record RunFigures(int Deltas, double FirstDeltaMs, double StreamSeconds, List<double> Delays, bool Failed);

/// <summary>A Prometheus histogram's bucket counts, and quantiles read from them (the upper bound of the bucket).</summary>
internal sealed record Histogram(List<(double UpperBound, double Count)> Buckets)
{
    /// <summary>
    /// The buckets of <paramref name="name"/> observed between two scrapes of the server's <c>/metrics</c>: of every
    /// series, or only of those whose labels include every one of <paramref name="labels"/> (as written, e.g.
    /// <c>priority="normal"</c>).
    /// </summary>
    public static Histogram Between(string before, string after, string name, params string[] labels)
    {
        var b = Parse(before, name, labels);
        return new Histogram(Parse(after, name, labels).Select(x => (x.UpperBound, x.Count - b.Where(y => y.UpperBound == x.UpperBound).Sum(y => y.Count))).ToList());
    }

    private static List<(double UpperBound, double Count)> Parse(string text, string name, string[] labels) => text.Split('\n')
        .Where(l => l.StartsWith(name + "_bucket{", StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)))
        .Select(l =>
        {
            var le = l[(l.IndexOf("le=\"", StringComparison.Ordinal) + 4)..];
            le = le[..le.IndexOf('"')];
            var bound = le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture);
            return (bound, double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        })
        .GroupBy(x => x.Item1).Select(g => (g.Key, g.Sum(x => x.Item2))).OrderBy(x => x.Key).ToList();

    /// <summary>Observations in all buckets.</summary>
    public double Count => Buckets.Count == 0 ? 0 : Buckets[^1].Count;

    /// <summary>The smallest bucket bound with at least <paramref name="q"/> of the observations at or below it; -1 when none.</summary>
    public double Quantile(double q)
    {
        var total = Buckets.Count == 0 ? 0 : Buckets[^1].Count;
        if (total <= 0) return -1;
        foreach (var (bound, count) in Buckets)
            if (count >= q * total) return double.IsInfinity(bound) ? 1e9 : bound;
        return -1;
    }
}

/// <summary>What holding idle streams cost one server process: its RSS at the end (bytes), the streams that failed to
/// open, and the RSS growth per stream over the fresh process and from the first half of the streams to the second.</summary>
internal sealed record IdleHold(long After, int Dropped, double BytesPerStream, double MarginalBytesPerStream);
