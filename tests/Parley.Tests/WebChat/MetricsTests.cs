using System.Net;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>The opt-in Prometheus endpoint shows Parley's own figures.</summary>
public sealed class MetricsTests
{
    [Fact]
    public async Task The_prometheus_endpoint_reports_streams_events_and_runs()
    {
        await using var server = await ParleyTestServer.StartAsync(extraArgs: ["--Parley:Metrics:Prometheus=true"]);
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        await server.Client.SendAsync(threadId, "hi");
        await stream.ReadUntilAsync(e => e.EventType == "run.completed");

        var anonymous = server.CreateClient(null);
        // Sum every series of a metric: OpenTelemetry listens to every meter named "Parley" in the process, so other
        // test hosts running in parallel add series and figures (a server process has one host). Hence lower bounds.
        static double Sum(string text, string name) => text.Split('\n')
            .Where(l => l.StartsWith(name + " ") || l.StartsWith(name + "{"))
            .Sum(l => double.Parse(l.Split(' ')[^1].Trim(), System.Globalization.CultureInfo.InvariantCulture));
        // The run's figures are recorded just after its events are published: poll until they are in.
        string text = "";
        for (var i = 0; i < 50; i++)
        {
            text = await anonymous.GetStringAsync("/metrics");
            if (Sum(text, "parley_run_duration_milliseconds_count") >= 1 && Sum(text, "parley_events_delivered_total") >= 7) break;
            await Task.Delay(100);
        }

        // Up-down counters (open streams, queue depth) can even go below zero here when another host's stream opened
        // before this listener started and closed after: assert that they are exported.
        Assert.Contains("parley_streams_open", text);
        Assert.True(Sum(text, "parley_events_appended_total") >= 7, text); // thread.created, message, run.queued/started, 2 replies, state, run.completed
        Assert.True(Sum(text, "parley_events_delivered_total") >= 7, text);
        Assert.True(Sum(text, "parley_run_duration_milliseconds_count") >= 1, text);
        Assert.True(Sum(text, "parley_run_time_to_first_delta_milliseconds_count") >= 1, text);
        Assert.Contains("parley_runs_queued", text);
        // The message's and the run's writes waited for the SQLite writer thread: normal writes, each one recorded.
        Assert.True(Sum(text, "parley_store_write_wait_milliseconds_count") >= 3, text);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("parley_store_write_wait_milliseconds_bucket{") && l.Contains("priority=\"normal\""));

        var withoutMetrics = await ParleyTestServer.StartAsync();
        await using (withoutMetrics)
            Assert.Equal(HttpStatusCode.NotFound, (await withoutMetrics.CreateClient(null).GetAsync("/metrics")).StatusCode);
    }
}
