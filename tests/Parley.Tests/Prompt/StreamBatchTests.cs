using System.Diagnostics;
using Microsoft.Extensions.Options;
using Parley.Server.Hosting;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Prompt;

/// <summary>
/// On a busy node (more than <c>Parley:Runs:StreamBatchAboveRuns</c> runs executing) a reply's tokens after its first
/// are stored, and so delivered, in batches at most <c>StreamBatchIntervalMs</c> apart; below it every token goes out
/// as soon as it is yielded. Both are read against the scripted model's stamps: each token carries the moment the model
/// yielded it on the <see cref="Stopwatch"/> clock the test process shares.
/// </summary>
public sealed class StreamBatchTests
{
    // A second between tokens (the model yields on a one-second timer): every "arrives before the next is yielded" check
    // has up to that long, less how late the timer fired the previous yield; ample even on a loaded machine.
    private const int Tokens = 4;
    private const int TokenDelayMs = 1000;

    [Fact]
    public async Task On_a_busy_node_tokens_after_the_first_come_in_a_batch_and_the_reply_does_not_wait_out_the_interval()
    {
        // Every node counts as busy (above 0 runs); the interval is a minute, far longer than the reply.
        var (deltas, completedAt) = await StreamReplyAsync(aboveRuns: 0, intervalMs: 60_000);

        // The first token goes at once, before the model yields the second.
        Assert.True(deltas[0].Received < deltas[1].Yielded, "the first token waited for the next one");
        // The rest wait for the batch: none of them arrives before the model yielded the last.
        for (var i = 1; i < Tokens; i++)
            Assert.True(deltas[i].Received >= deltas[^1].Yielded, $"token {i + 1} arrived before the batch it belongs to was complete");
        // The model's end ends the wait: the reply completes long before the minute is out (a reply that waited it out
        // fails earlier, as a 10 s timeout of the stream's read in StreamReplyAsync).
        Assert.True(Stopwatch.GetElapsedTime(deltas[^1].Yielded, completedAt) < TimeSpan.FromSeconds(10), "the reply waited out the batch interval");
    }

    [Fact]
    public async Task Below_the_busy_threshold_every_token_arrives_before_the_model_yields_the_next()
    {
        // One run executing, not above 1: no batching, even with a minute's interval.
        var (deltas, _) = await StreamReplyAsync(aboveRuns: 1, intervalMs: 60_000);

        for (var i = 0; i < Tokens - 1; i++)
            Assert.True(deltas[i].Received < deltas[i + 1].Yielded, $"token {i + 1} waited for token {i + 2}");
    }

    [Theory]
    [InlineData("StreamBatchIntervalMs")]
    [InlineData("StreamBatchAboveRuns")]
    public async Task A_negative_setting_stops_the_server_at_start_naming_it(string setting)
    {
        await using var app = ParleyApplication.Build(["--ConnectionStrings:Parley=Data Source=:memory:", $"--Parley:Runs:{setting}=-1", "--urls=http://127.0.0.1:0"]);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains($"Parley:Runs:{setting}", error.Message);
    }

    private sealed record Delta(long Yielded, long Received);

    private static async Task<(List<Delta> Deltas, long CompletedAt)> StreamReplyAsync(int aboveRuns, int intervalMs)
    {
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "streamer.yaml", $"id: {agentId}\nname: Streamer\nmode: PROMPT\nmodel: paced\ninstructions: Stream.\n");
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs:
        [
            "--Parley:Models:paced:Provider=scripted", $"--Parley:Models:paced:ScriptedTokens={Tokens}",
            $"--Parley:Models:paced:ScriptedDelayMs={TokenDelayMs}", "--Parley:Models:paced:ScriptedTimestamps=true",
            $"--Parley:Runs:StreamBatchAboveRuns={aboveRuns}", $"--Parley:Runs:StreamBatchIntervalMs={intervalMs}",
        ]);
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;
        await using var live = await SseStream.OpenAsync(client, threadId, events: "all");
        await client.SendAsync(threadId, "hi");

        var deltas = new List<Delta>();
        while (await live.NextAsync(timeoutSeconds: 10) is { } item)
        {
            var received = Stopwatch.GetTimestamp();
            if (item.EventType == "run.completed")
            {
                Assert.Equal(Tokens, deltas.Count);
                return (deltas, received);
            }
            if (item.EventType != "message.delta") continue;
            // "token1@<called>@<yielded>" for the first token, " token2@<yielded>" for the others.
            var stamps = item.Json().GetProperty("delta").GetString()!.Split('@');
            deltas.Add(new Delta(long.Parse(stamps[^1]), received));
        }
        throw new InvalidOperationException($"The stream ended before the run completed, after {deltas.Count} deltas.");
    }
}
