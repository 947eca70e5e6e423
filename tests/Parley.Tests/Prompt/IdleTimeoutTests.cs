using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Time.Testing;
using Parley.Core.Models;

namespace Parley.Tests.Prompt;

/// <summary>
/// A model that falls silent mid-reply fails with a timeout; one that keeps streaming never does. Time is a
/// <see cref="FakeTimeProvider"/> that the test moves only once the client has taken the last update, so the outcome
/// does not depend on how fast this machine runs.
/// </summary>
public sealed class IdleTimeoutTests
{
    [Fact]
    public async Task A_model_silent_after_its_first_update_fails_with_a_timeout_that_says_so()
    {
        var clock = new FakeTimeProvider();
        var model = new PacedModel(clock, updates: 3, pause: TimeSpan.FromMilliseconds(100), pauseAfterFirst: TimeSpan.FromSeconds(30));
        var client = new IdleTimeoutChatClient(model, TimeSpan.FromMilliseconds(300), clock);
        var received = new List<string>();

        var reading = ReadAllAsync(client, received);
        await WaitForAsync(() => received.Count == 1 && model.Waiting);
        clock.Advance(TimeSpan.FromMilliseconds(299));
        Assert.False(reading.IsCompleted); // not yet silent for the whole timeout
        clock.Advance(TimeSpan.FromMilliseconds(1));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => reading.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.Equal(["piece1"], received);
        Assert.Contains("sent nothing for 0.3 s", error.Message);
    }

    [Fact]
    public async Task A_reply_that_keeps_streaming_longer_than_the_timeout_in_all_completes()
    {
        // 40 updates 50 ms apart (2 s in all) with a 1 s timeout: the clock restarts with every update.
        var clock = new FakeTimeProvider();
        var model = new PacedModel(clock, updates: 40, pause: TimeSpan.FromMilliseconds(50));
        var client = new IdleTimeoutChatClient(model, TimeSpan.FromSeconds(1), clock);
        var received = new List<string>();

        var reading = ReadAllAsync(client, received);
        for (var i = 1; i < 40; i++)
        {
            await WaitForAsync(() => received.Count == i && model.Waiting);
            clock.Advance(TimeSpan.FromMilliseconds(50));
        }

        await reading.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(40, received.Count);
    }

    private static async Task ReadAllAsync(IChatClient client, List<string> received)
    {
        await Task.Yield();
        await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")]))
            lock (received) received.Add(update.Text);
    }

    // Waits (real time, bounded) until the reader and the model reached the state the next step of time needs.
    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 3000 && !condition(); i++) await Task.Delay(10, TestContext.Current.CancellationToken);
        Assert.True(condition(), "the client did not take the model's update within 30 s");
    }

    /// <summary>A model that yields <c>piece1</c>…<c>pieceN</c>, pausing on <paramref name="clock"/> before each but the first.</summary>
    private sealed class PacedModel(TimeProvider clock, int updates, TimeSpan pause, TimeSpan pauseAfterFirst = default) : IChatClient
    {
        private volatile bool _waiting;

        /// <summary>True while the model waits for its next pause to end.</summary>
        public bool Waiting => _waiting;

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            for (var i = 1; i <= updates; i++)
            {
                if (i > 1)
                {
                    var delay = Task.Delay(i == 2 && pauseAfterFirst > TimeSpan.Zero ? pauseAfterFirst : pause, clock, cancellationToken);
                    _waiting = true;
                    try { await delay; }
                    finally { _waiting = false; }
                }
                yield return new ChatResponseUpdate(ChatRole.Assistant, $"piece{i}");
            }
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }
}
