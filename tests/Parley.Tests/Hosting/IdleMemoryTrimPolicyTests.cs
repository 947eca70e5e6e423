using Microsoft.Extensions.Options;
using Parley.Server.Hosting;

namespace Parley.Tests.Hosting;

/// <summary>
/// An idle server that grew gives memory back once, and a busy one never stops for it: the idle trim's rules (idle for
/// the configured period, grown by 32 MiB since the last trim, at most 1 % of the time paused).
/// </summary>
public sealed class IdleMemoryTrimPolicyTests
{
    private const long MiB = 1 << 20;
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    // Feeds the policy one reading a second from `from` to `to` (s), allocating `bytesPerSecond` and resident
    // `resident(t)`; returns the seconds at which it said to trim (each recorded with `pause`, leaving `leftResident`
    // resident, by default the reading itself: a trim that found nothing to give back).
    private static List<int> Run(IdleMemoryTrimPolicy policy, int from, int to, long bytesPerSecond, Func<int, long> resident, ref long allocated,
        TimeSpan? pause = null, long? leftResident = null, Func<int, long>? eventsAppended = null)
    {
        var trims = new List<int>();
        for (var t = from; t <= to; t++)
        {
            allocated += bytesPerSecond;
            if (!policy.ShouldTrim(t * Second, allocated, eventsAppended?.Invoke(t) ?? 0, resident(t))) continue;
            trims.Add(t);
            policy.Trimmed(t * Second, pause ?? TimeSpan.FromMilliseconds(100), leftResident ?? resident(t));
        }
        return trims;
    }

    [Fact]
    public void A_server_that_grew_and_then_idles_trims_once_after_the_idle_period()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        // Busy for 20 s (50 MB/s) while memory grows from 100 to 300 MiB: no trim.
        Assert.Empty(Run(policy, 0, 20, 50 * MiB, t => (100 + 10 * t) * MiB, ref allocated));
        // Then heartbeats only (0.2 MB/s): a trim once the last busy second is 5 s behind, and none after it.
        Assert.Equal([25], Run(policy, 21, 120, MiB / 5, _ => 300 * MiB, ref allocated));
    }

    [Fact]
    public void A_busy_server_never_trims()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        Assert.Empty(Run(policy, 0, 300, 2 * MiB, t => (100 + t) * MiB, ref allocated));
    }

    [Fact]
    public void An_idle_server_that_did_not_grow_does_not_trim()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        // 31 MiB over its lowest reading: not worth a pause.
        Assert.Empty(Run(policy, 0, 60, 0, t => t < 10 ? 150 * MiB : 181 * MiB, ref allocated));
        Assert.Equal([61], Run(policy, 61, 70, 0, _ => 182 * MiB, ref allocated));
    }

    [Fact]
    public void Growth_counts_from_what_the_last_trim_left()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        Assert.Equal([5], Run(policy, 0, 5, 0, t => t == 0 ? 100 * MiB : 200 * MiB, ref allocated, leftResident: 100 * MiB));
        // The trim left 100 MiB; 120 MiB is 20 over it, 140 MiB 40.
        Assert.Empty(Run(policy, 6, 30, 0, _ => 120 * MiB, ref allocated));
        Assert.Equal([31], Run(policy, 31, 40, 0, _ => 140 * MiB, ref allocated));
    }

    [Fact]
    public void Trims_stop_the_process_for_at_most_one_percent_of_the_time()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        // Idle throughout, memory back at 160 MiB after every trim that left 100: each 300 ms pause allows the next 30 s later.
        var trims = Run(policy, 0, 100, 0, t => t == 0 ? 100 * MiB : 160 * MiB, ref allocated, TimeSpan.FromMilliseconds(300), leftResident: 100 * MiB);
        Assert.Equal([5, 35, 65, 95], trims);
    }

    [Fact]
    public void A_burst_of_allocation_restarts_the_idle_period()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        Assert.Empty(Run(policy, 0, 3, 0, t => t == 0 ? 100 * MiB : 200 * MiB, ref allocated));
        allocated += 20 * MiB; // one busy second (a reply, a few requests)
        Assert.Equal([9], Run(policy, 4, 20, 0, _ => 200 * MiB, ref allocated));
    }

    [Fact]
    public void A_reply_streaming_slowly_keeps_the_server_from_trimming()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        long allocated = 0;
        // One delta every 4 ms allocates well under the idle rate, but someone waits for each token: no trim while it
        // streams (an event appended every second), one 5 s after its last event.
        Assert.Empty(Run(policy, 0, 60, MiB / 4, t => (100 + t) * MiB, ref allocated, eventsAppended: t => 250L * t));
        Assert.Equal([66], Run(policy, 61, 80, 0, _ => 160 * MiB, ref allocated, eventsAppended: _ => 250L * 61));
    }

    [Fact]
    public async Task An_idle_period_that_is_not_positive_stops_the_server_at_start_naming_the_setting()
    {
        await using var app = ParleyApplication.Build(["--ConnectionStrings:Parley=Data Source=:memory:", "--Parley:Memory:IdleSeconds=0", "--urls=http://127.0.0.1:0"]);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Parley:Memory:IdleSeconds", error.Message);
    }
}
