using Microsoft.Extensions.Options;
using Parley.Server.Hosting;

namespace Parley.Tests.Hosting;

/// <summary>
/// An idle server that grew gives memory back once, and a busy one never stops for it: the idle trim's rules (idle for
/// the configured period — no run, no thread event, little allocation —, grown by 32 MiB since the last trim, one trim
/// per idle period, at most 1 % of the time paused).
/// </summary>
public sealed class IdleMemoryTrimPolicyTests
{
    private const long MiB = 1 << 20;

    // A simulated server read once a second: what it allocates, handles and holds in each second from now on.
    private sealed class Server(IdleMemoryTrimPolicy policy)
    {
        public int Second { get; private set; } = -1;
        public long Allocated { get; private set; }
        public long Events { get; private set; }
        public long Resident { get; set; } = 100 * MiB;

        // The pause each trim takes, and what it leaves resident (by default what was resident: nothing to give back).
        public TimeSpan Pause { get; set; } = TimeSpan.FromMilliseconds(100);
        public long? LeftResident { get; set; }

        // Runs `seconds` readings, each after a second that allocated `bytes` and handled `events` with `running` as
        // the run engine's state; returns the seconds at which the policy trimmed.
        public List<int> Run(int seconds, long bytes = 0, long events = 0, bool running = false)
        {
            var trims = new List<int>();
            for (var i = 0; i < seconds; i++)
            {
                Second++;
                Allocated += bytes;
                Events += events;
                var now = TimeSpan.FromSeconds(Second);
                if (!policy.ShouldTrim(new IdleMemoryTrimPolicy.Reading(now, Allocated, Events, running, Resident))) continue;
                trims.Add(Second);
                if (LeftResident is { } left) Resident = left;
                policy.Trimmed(now, Pause, Resident);
            }
            return trims;
        }
    }

    private static Server NewServer() => new(new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5)));

    [Fact]
    public void A_server_that_grew_and_then_idles_trims_once_after_the_idle_period()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 300 * MiB;
        // Busy for 20 s (50 MB/s, replies streaming): no trim.
        Assert.Empty(server.Run(20, bytes: 50 * MiB, events: 500, running: true));
        // Then heartbeats only (0.2 MB/s): a trim once the last busy second is 5 s behind, and none after it even
        // though the memory stays where it was, for an hour.
        Assert.Equal([25], server.Run(3600, bytes: MiB / 5));
    }

    [Fact]
    public void Memory_that_creeps_back_while_the_server_stays_idle_is_not_trimmed_again_until_it_was_busy()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 300 * MiB;
        server.LeftResident = 100 * MiB;
        Assert.Equal([5], server.Run(5));
        // After the trim every page the heartbeats touch is resident again, up to the gen0 budget: 200 MiB, idle all
        // along. Trimming at every 32 MiB would pause the process every few minutes, forever.
        server.LeftResident = null;
        server.Resident = 200 * MiB;
        Assert.Empty(server.Run(3600, bytes: MiB / 5));
        server.Run(1, bytes: 50 * MiB);
        Assert.Equal([3611], server.Run(10));
    }

    [Fact]
    public void A_late_reading_after_a_busy_one_does_not_count_as_an_idle_period()
    {
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(5));
        Assert.False(policy.ShouldTrim(new(TimeSpan.FromSeconds(0), 0, 0, false, 100 * MiB)));
        Assert.False(policy.ShouldTrim(new(TimeSpan.FromSeconds(1), 50 * MiB, 0, false, 300 * MiB))); // busy
        // The process was starved for 6 s: the next reading cannot tell whether it was idle, so the period starts there.
        Assert.False(policy.ShouldTrim(new(TimeSpan.FromSeconds(7), 55 * MiB, 0, false, 300 * MiB)));
        for (var t = 8; t < 12; t++) Assert.False(policy.ShouldTrim(new(TimeSpan.FromSeconds(t), 55 * MiB, 0, false, 300 * MiB)));
        Assert.True(policy.ShouldTrim(new(TimeSpan.FromSeconds(12), 55 * MiB, 0, false, 300 * MiB)));
    }

    [Fact]
    public void A_busy_server_never_trims()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 500 * MiB;
        Assert.Empty(server.Run(300, bytes: 2 * MiB));
    }

    [Fact]
    public void A_server_that_allocates_in_bursts_after_a_long_quiet_spell_does_not_trim_during_a_burst()
    {
        var server = NewServer();
        server.Run(3600); // a quiet hour, nothing to give back
        server.Resident = 400 * MiB;
        // A surge of requests that handles no thread event (logins, say): 200 MB/s for 3 s. The allocation alone keeps
        // the server from being idle until 5 s after the surge, however long it was quiet before.
        Assert.Empty(server.Run(3, bytes: 200 * MiB));
        Assert.Equal([3607], server.Run(10));
    }

    [Fact]
    public void A_second_of_allocation_over_the_rate_restarts_the_idle_period()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 200 * MiB;
        Assert.Empty(server.Run(4));
        Assert.Empty(server.Run(1, bytes: 2 * MiB)); // at second 5: one busy second (a few requests)
        Assert.Equal([10], server.Run(10));
    }

    [Fact]
    public void An_idle_server_that_did_not_grow_does_not_trim()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 131 * MiB; // 31 MiB over its lowest reading: not worth a pause
        Assert.Empty(server.Run(60));
        server.Run(1, bytes: 10 * MiB); // busy for a second, then 1 MiB more
        server.Resident = 132 * MiB;
        Assert.Equal([66], server.Run(10));
    }

    [Fact]
    public void Growth_counts_from_what_the_last_trim_left()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 200 * MiB;
        server.LeftResident = 150 * MiB;
        Assert.Equal([5], server.Run(5));
        // Busy, then idle again: 170 MiB is 20 over what the trim left (70 over the start's low), 190 MiB 40.
        server.Run(1, bytes: 50 * MiB);
        server.Resident = 170 * MiB;
        Assert.Empty(server.Run(20));
        server.Run(1, bytes: 50 * MiB);
        server.Resident = 190 * MiB;
        Assert.Equal([32], server.Run(10));
    }

    [Fact]
    public void A_server_busy_and_idle_by_turns_is_paused_for_at_most_one_percent_of_the_time()
    {
        var server = NewServer();
        server.Pause = TimeSpan.FromMilliseconds(300);
        server.LeftResident = 100 * MiB;
        server.Run(1);
        var trims = new List<int>();
        // Every 10 s: a busy second that grows memory by 60 MiB, then 9 idle seconds. Each 300 ms pause allows the
        // next trim 30 s later at the earliest, at the end of the idle seconds that follow.
        for (var cycle = 0; cycle < 10; cycle++)
        {
            server.Run(1, bytes: 60 * MiB);
            server.Resident = 160 * MiB;
            trims.AddRange(server.Run(9));
        }
        Assert.Equal([6, 36, 66, 96], trims);
    }

    [Fact]
    public void A_run_waiting_for_its_model_keeps_the_server_from_trimming()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 300 * MiB;
        // A reasoning model thinks for 60 s: no event, almost no allocation, but a run is executing.
        Assert.Empty(server.Run(60, running: true));
        Assert.Equal([65], server.Run(10));
    }

    [Fact]
    public void A_reply_streaming_slowly_keeps_the_server_from_trimming()
    {
        var server = NewServer();
        server.Run(1);
        server.Resident = 300 * MiB;
        // One delta every 4 ms, produced on another node: well under the idle rate, no run here, but an event handled
        // every second. No trim while it streams; one 5 s after its last event.
        Assert.Empty(server.Run(60, bytes: MiB / 4, events: 250));
        Assert.Equal([65], server.Run(10));
    }

    [Fact]
    public async Task An_idle_period_that_is_not_positive_stops_the_server_at_start_naming_the_setting()
    {
        await using var app = ParleyApplication.Build(["--ConnectionStrings:Parley=Data Source=:memory:", "--Parley:Memory:IdleSeconds=0", "--urls=http://127.0.0.1:0"]);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Parley:Memory:IdleSeconds", error.Message);
    }
}
