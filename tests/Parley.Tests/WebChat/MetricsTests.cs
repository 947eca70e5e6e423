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
        string text = "";
        for (var i = 0; i < 50 && !text.Contains("parley_run_duration"); i++)
        {
            await Task.Delay(100);
            text = await anonymous.GetStringAsync("/metrics");
        }
        var lines = text.Split('\n');
        double Value(string name) => double.Parse(lines.First(l => l.StartsWith(name + " ") || l.StartsWith(name + "{")).Split(' ')[^1].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);

        // OpenTelemetry listens to every meter named "Parley" in the process, so other test hosts running in parallel
        // add to these figures (a server process has one host): assert lower bounds.
        Assert.True(Value("parley_streams_open") >= 1);
        Assert.True(Value("parley_events_appended_total") >= 7); // thread.created, message, run.queued/started, 2 replies, state, run.completed
        Assert.True(Value("parley_events_delivered_total") >= 7);
        Assert.True(Value("parley_run_duration_milliseconds_count") >= 1);
        Assert.True(Value("parley_run_time_to_first_delta_milliseconds_count") >= 1);
        Assert.Contains(lines, l => l.StartsWith("parley_runs_queued"));

        var withoutMetrics = await ParleyTestServer.StartAsync();
        await using (withoutMetrics)
            Assert.Equal(HttpStatusCode.NotFound, (await withoutMetrics.CreateClient(null).GetAsync("/metrics")).StatusCode);
    }
}
