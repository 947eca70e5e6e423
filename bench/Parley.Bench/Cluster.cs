using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

using static Parley.Bench.BenchClient;

namespace Parley.Bench;

/// <summary>
/// The two-node mode: the benchmark scenarios across two Parley processes on one PostgreSQL database and one Redis
/// (<c>--nodes 2 --postgres CONNECTION-STRING --redis CONFIGURATION</c>). Every scenario puts the work on one node
/// and the reading on the other (or alternates), so each figure includes the cross-node path: commit in PostgreSQL,
/// publish to Redis, delivery by the other node. Give an empty database; every scenario starts two fresh nodes on it.
/// </summary>
internal static class Cluster
{
    public static async Task<int> RunAsync(List<string> arguments, string serverDll, bool quick, double ceiling, string scenario, Action<string, Dictionary<string, double>> report)
    {
        string? Option(string name) => arguments.IndexOf(name) is var i and >= 0 && i + 1 < arguments.Count ? arguments[i + 1] : null;
        if (Option("--nodes") != "2") { Console.Error.WriteLine("Parley.Bench: only --nodes 2 is supported"); return 2; }
        var postgres = Option("--postgres");
        var redis = Option("--redis");
        if (postgres is null || redis is null)
        {
            Console.Error.WriteLine("Parley.Bench: --nodes 2 needs --postgres CONNECTION-STRING and --redis CONFIGURATION (docs/benchmarks.md)");
            return 2;
        }
        string[] settings = [$"--ConnectionStrings:Postgres={postgres}", $"--ConnectionStrings:Redis={redis}"];
        bool Wants(string name) => scenario == "all" || scenario == name;
        var results = new List<(string, Dictionary<string, double>)>();
        void Report(string name, Dictionary<string, double> figures)
        {
            results.Add((name, figures));
            report(name, figures);
        }

        async Task<(ParleyProcess A, ParleyProcess B)> StartPairAsync(int tokens)
        {
            // One after the other: the first migrates the database and publishes the agents, the second finds them.
            var a = await ParleyProcess.StartAsync(serverDll, tokens, 0, extraArguments: [.. settings, "--Parley:Cluster:NodeId=bench-a"]);
            var b = await ParleyProcess.StartAsync(serverDll, tokens, 0, extraArguments: [.. settings, "--Parley:Cluster:NodeId=bench-b"]);
            return (a, b);
        }

        if (Wants("single-stream"))
        {
            var tokens = quick ? 2_000 : 10_000;
            var (a, b) = await StartPairAsync(tokens);
            await using (a) await using (b)
            {
                using var httpA = NewClient(a.Address);
                using var httpB = NewClient(b.Address);
                var thread = await CreateThreadAsync(httpA, ParleyProcess.StreamingAgent);
                var run = await StreamOneRunAsync(httpB, httpA, thread);
                Report("2n-single-stream", new()
                {
                    ["deltas"] = run.Deltas,
                    ["events_per_s"] = Math.Round(run.Deltas / run.StreamSeconds),
                    ["ratio_to_ceiling"] = Math.Round(run.Deltas / run.StreamSeconds / ceiling, 3),
                    ["post_to_first_delta_ms"] = Math.Round(run.FirstDeltaMs, 1),
                });
            }
        }

        if (Wants("concurrent-runs"))
        {
            var c = quick ? 100 : 1_000;
            var (a, b) = await StartPairAsync(200);
            await using (a) await using (b)
            {
                using var httpA = NewClient(a.Address);
                using var httpB = NewClient(b.Address);
                var threads = await Task.WhenAll(Enumerable.Range(0, c).Select(i => CreateThreadAsync(i % 2 == 0 ? httpA : httpB, ParleyProcess.StreamingAgent)));
                var started = Stopwatch.StartNew();
                // Thread i streams from one node and posts on the other.
                var runs = await Task.WhenAll(threads.Select((t, i) => i % 2 == 0 ? StreamOneRunAsync(httpB, httpA, t) : StreamOneRunAsync(httpA, httpB, t)));
                var seconds = started.Elapsed.TotalSeconds;
                var deltas = runs.Sum(r => r.Deltas);
                Report($"2n-concurrent-runs-{c}", new()
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
            var (a, b) = await StartPairAsync(200);
            await using (a) await using (b)
            {
                using var httpA = NewClient(a.Address);
                using var httpB = NewClient(b.Address);
                var thread = await CreateThreadAsync(httpA, ParleyProcess.StreamingAgent);
                var streams = await Task.WhenAll(Enumerable.Range(0, subscribers).Select(i => OpenAsync(i % 2 == 0 ? httpA : httpB, $"/api/v1/threads/{thread}/stream?events=all", null)));
                Report("2n-fan-out", await MeasureFanOutAsync(streams, () => PostAsync(httpA, thread, "go"), 200, ceiling));
            }
        }

        if (Wants("ingest"))
        {
            var total = quick ? 2_000 : 10_000;
            const int workers = 32;
            var (a, b) = await StartPairAsync(10);
            await using (a) await using (b)
            {
                using var httpA = NewClient(a.Address);
                using var httpB = NewClient(b.Address);
                HttpClient Node(int w) => w % 2 == 0 ? httpA : httpB;
                var threads = await Task.WhenAll(Enumerable.Range(0, workers).Select(w => CreateThreadAsync(Node(w), ParleyProcess.SilentAgent)));
                var warmUp = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
                {
                    while (warmUp.Elapsed < TimeSpan.FromSeconds(quick ? 3 : 10)) await PostAsync(Node(w), threads[w], "warm-up");
                }));
                var latencies = new List<double>[workers];
                var started = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
                {
                    latencies[w] = [];
                    for (var i = 0; i < total / workers; i++)
                    {
                        var t = Stopwatch.StartNew();
                        await PostAsync(Node(w + i), threads[w], $"message {i}"); // alternate nodes for one thread too
                        latencies[w].Add(t.Elapsed.TotalMilliseconds);
                    }
                }));
                var seconds = started.Elapsed.TotalSeconds;
                var all = latencies.SelectMany(l => l).ToList();
                Report("2n-ingest", new()
                {
                    ["messages"] = all.Count,
                    ["messages_per_s"] = Math.Round(all.Count / seconds),
                    ["latency_p50_ms"] = Math.Round(Percentile(all, 0.50), 2),
                    ["latency_p99_ms"] = Math.Round(Percentile(all, 0.99), 2),
                });
            }
        }

        if (Wants("resume"))
        {
            var tokens = quick ? 20_000 : 100_000;
            var (a, b) = await StartPairAsync(tokens);
            await using (a) await using (b)
            {
                using var httpA = NewClient(a.Address);
                using var httpB = NewClient(b.Address);
                var thread = await CreateThreadAsync(httpA, ParleyProcess.StreamingAgent);
                await StreamOneRunAsync(httpA, httpA, thread);
                Report("2n-resume", await MeasureResumeAsync(httpB, thread, tokens, ceiling));
            }
        }

        Console.WriteLine();
        Console.WriteLine($"{"scenario (2 nodes)",-24} figures");
        foreach (var (name, figures) in results)
            Console.WriteLine($"{name,-24} {string.Join("  ", figures.Select(f => $"{f.Key}={f.Value.ToString(CultureInfo.InvariantCulture)}"))}");
        return 0;
    }

    // Opens the thread's stream on one node, posts on another, and reads that run to its end.
    private static async Task<RunFigures> StreamOneRunAsync(HttpClient streamNode, HttpClient postNode, string thread)
    {
        using var response = await OpenAsync(streamNode, $"/api/v1/threads/{thread}/stream?events=all", null);
        var items = SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync().GetAsyncEnumerator();
        var clock = Stopwatch.StartNew();
        await PostAsync(postNode, thread, "go");
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
}
