using Microsoft.Extensions.AI;
using Parley.Core.Models;

namespace Parley.Tests.Prompt;

/// <summary>The scripted model (demos, benchmarks) streams its pieces and reports usage for them.</summary>
public sealed class ScriptedModelTests
{
    [Fact]
    public async Task It_reports_its_pieces_as_output_and_estimates_input_at_four_characters_a_token_plus_four_per_message()
    {
        var model = new ScriptedChatClient(new ModelOptions { Provider = "scripted", ScriptedTokens = 3 });
        ChatMessage[] prompt = [new(ChatRole.System, "You help."), new(ChatRole.User, "hi there"), new(ChatRole.Assistant, "")];

        var response = await model.GetResponseAsync(prompt, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal("token1 token2 token3", response.Text);
        // ⌈9 / 4⌉ + 4, ⌈8 / 4⌉ + 4 and 0 + 4.
        Assert.Equal(3 + 4 + 2 + 4 + 4, response.Usage?.InputTokenCount);
        Assert.Equal(3, response.Usage?.OutputTokenCount);
        Assert.Equal(20, response.Usage?.TotalTokenCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Timestamps_stamp_every_token_or_only_the_first_with_the_call_time(bool firstTokenOnly)
    {
        var model = new ScriptedChatClient(new ModelOptions
        {
            Provider = "scripted", ScriptedTokens = 3, ScriptedTimestamps = true, ScriptedTimestampsFirstTokenOnly = firstTokenOnly,
        });
        var before = System.Diagnostics.Stopwatch.GetTimestamp();

        var texts = new List<string>();
        await foreach (var update in model.GetStreamingResponseAsync([new(ChatRole.User, "hi")], cancellationToken: TestContext.Current.CancellationToken))
            if (update.Text.Length > 0) texts.Add(update.Text);
        var after = System.Diagnostics.Stopwatch.GetTimestamp();

        Assert.Equal(3, texts.Count);
        var first = texts[0].Split('@');
        Assert.Equal("token1", first[0]);
        Assert.InRange(long.Parse(first[1]), before, long.Parse(first[2]));
        Assert.InRange(long.Parse(first[2]), before, after);
        if (firstTokenOnly)
            Assert.Equal([" token2", " token3"], texts[1..]);
        else
            for (var i = 1; i < 3; i++)
            {
                var stamped = texts[i].Split('@');
                Assert.Equal($" token{i + 1}", stamped[0]);
                Assert.InRange(long.Parse(stamped[1]), before, after);
            }
    }

    [Fact]
    public async Task Replies_share_their_pieces_in_read_only_lists_and_read_the_same_every_time()
    {
        var model = new ScriptedChatClient(new ModelOptions { Provider = "scripted", ScriptedTokens = 3 });
        var cancellationToken = TestContext.Current.CancellationToken;

        var updates = await model.GetStreamingResponseAsync([new(ChatRole.User, "hi")], cancellationToken: cancellationToken).ToListAsync(cancellationToken);
        Assert.Throws<NotSupportedException>(() => updates[0].Contents.Add(new TextContent(" extra")));
        Assert.Throws<NotSupportedException>(() => updates[1].Contents[0] = new TextContent(" other"));

        // Aggregating a reply merges its texts into contents of its own: the next replies read the same pieces.
        Assert.Equal("token1 token2 token3", (await model.GetResponseAsync([new(ChatRole.User, "hi")], cancellationToken: cancellationToken)).Text);
        var again = await model.GetStreamingResponseAsync([new(ChatRole.User, "hi")], cancellationToken: cancellationToken).ToListAsync(cancellationToken);
        Assert.Equal(["token1", " token2", " token3", ""], again.Select(u => u.Text));
    }

    [Fact]
    public async Task The_first_token_only_option_alone_stamps_nothing()
    {
        var model = new ScriptedChatClient(new ModelOptions { Provider = "scripted", ScriptedTokens = 2, ScriptedTimestampsFirstTokenOnly = true });

        var response = await model.GetResponseAsync([new(ChatRole.User, "hi")], cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal("token1 token2", response.Text);
    }
}
