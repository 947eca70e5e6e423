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
}
