using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Diagnostics;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>
/// An open stream ends when its client leaves and when the server stops: nothing keeps a stream (or the server's
/// shutdown) waiting once nobody can read it. Streams get the server's stop from the event reader's one registration.
/// </summary>
public sealed class StreamLifetimeTests
{
    /// <summary>Counts this host's open streams (its own meter, so streams of other test hosts do not count).</summary>
    private sealed class OpenStreams : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _open;

        public OpenStreams(IServiceProvider services)
        {
            var scope = services.GetRequiredService<IMeterFactory>();
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Scope == scope && instrument.Meter.Name == ParleyMetrics.MeterName && instrument.Name == "parley.streams.open")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _open, value));
            _listener.Start();
        }

        public long Count => Interlocked.Read(ref _open);

        /// <summary>Waits (at most 10 s) until the count is <paramref name="expected"/>.</summary>
        public async Task WaitForAsync(long expected)
        {
            for (var i = 0; i < 200 && Count != expected; i++) await Task.Delay(50, TestContext.Current.CancellationToken);
            Assert.Equal(expected, Count);
        }

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task An_open_stream_ends_cleanly_when_the_server_stops_and_does_not_hold_the_stop_open()
    {
        var server = await ParleyTestServer.StartAsync();
        await using var _ = server;
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Assert.Equal("thread.created", (await stream.NextAsync())?.EventType);

        // The host waits up to 30 s (its shutdown timeout) for requests still running; a stream that ignored the stop
        // would hold it that long and then be cut off instead of ended.
        var stopping = server.StopAsync();
        Assert.Null(await stream.NextAsync(timeoutSeconds: 20));
        await stopping.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData("/api/v1/threads/{0}/stream")] // web chat, messages only: a new thread has no agent message yet
    [InlineData("/threads/{0}/stream")] // agent server, joined with nothing stored to send
    public async Task A_stream_with_nothing_to_send_yet_answers_its_headers_at_once_not_at_the_first_heartbeat(string path)
    {
        // A heartbeat far beyond the wait below: the headers must come from the stream's start, not from a ping.
        await using var server = await ParleyTestServer.StartAsync(extraArgs: "--Parley:Streaming:HeartbeatSeconds=60");
        var threadId = path.StartsWith("/api/", StringComparison.Ordinal)
            ? (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!
            : await Parley.Tests.AgentServer.AgentServerClient.CreateAgentServerThreadAsync(server.Client);

        using var request = new HttpRequestMessage(HttpMethod.Get, string.Format(System.Globalization.CultureInfo.InvariantCulture, path, threadId));
        using var headersWithin = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        headersWithin.CancelAfter(TimeSpan.FromSeconds(20));
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headersWithin.Token);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_stream_replaying_stored_events_counts_them_as_handled_so_the_idle_trim_waits_for_it()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var metrics = server.Services.GetRequiredService<ParleyMetrics>();
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        var seenBefore = metrics.EventsSeenTotal;
        Assert.True(seenBefore >= 1, "the thread's creation was appended");

        // The stream reads the thread's stored events back (here its creation); they count as handled events, as events
        // received from another node do, so a node streaming a reply that another node appends does not look idle.
        await using var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Assert.Equal("thread.created", (await stream.NextAsync())?.EventType);
        Assert.True(metrics.EventsSeenTotal > seenBefore);
    }

    [Fact]
    public async Task A_stream_whose_client_leaves_is_closed_on_the_server()
    {
        await using var server = await ParleyTestServer.StartAsync();
        using var open = new OpenStreams(server.Services);
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;

        var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Assert.Equal("thread.created", (await stream.NextAsync())?.EventType);
        await open.WaitForAsync(1);
        await stream.DisposeAsync();
        await open.WaitForAsync(0);

        // The thread's next stream works as before: the reader let go of the first one.
        await using var again = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Assert.Equal("thread.created", (await again.NextAsync())?.EventType);
        await open.WaitForAsync(1);
    }
}
