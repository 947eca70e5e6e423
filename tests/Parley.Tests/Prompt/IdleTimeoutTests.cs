using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Parley.Core.Models;

namespace Parley.Tests.Prompt;

/// <summary>A model that falls silent mid-reply fails with a timeout; one that keeps streaming never does.</summary>
public sealed class IdleTimeoutTests
{
    [Fact]
    public async Task A_model_silent_after_its_first_update_fails_with_a_timeout_that_says_so()
    {
        var client = new IdleTimeoutChatClient(new PacedModel(updates: 3, pauseAfterFirst: TimeSpan.FromSeconds(30)), TimeSpan.FromMilliseconds(300));
        var received = new List<string>();

        var error = await Assert.ThrowsAsync<TimeoutException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")], cancellationToken: TestContext.Current.CancellationToken))
                received.Add(update.Text);
        });

        Assert.Equal(["piece1"], received);
        Assert.Contains("sent nothing for 0.3 s", error.Message);
    }

    [Fact]
    public async Task A_reply_that_keeps_streaming_longer_than_the_timeout_in_all_completes()
    {
        // 40 updates 50 ms apart (≈ 2 s in all) with a 1 s timeout: the clock restarts with every update.
        var client = new IdleTimeoutChatClient(new PacedModel(updates: 40, pause: TimeSpan.FromMilliseconds(50)), TimeSpan.FromSeconds(1));
        var count = 0;

        await foreach (var _ in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")], cancellationToken: TestContext.Current.CancellationToken))
            count++;

        Assert.Equal(40, count);
    }

    private sealed class PacedModel(int updates, TimeSpan pause = default, TimeSpan pauseAfterFirst = default) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            for (var i = 1; i <= updates; i++)
            {
                if (i > 1) await Task.Delay(i == 2 && pauseAfterFirst > TimeSpan.Zero ? pauseAfterFirst : pause, cancellationToken);
                yield return new ChatResponseUpdate(ChatRole.Assistant, $"piece{i}");
            }
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }
}
