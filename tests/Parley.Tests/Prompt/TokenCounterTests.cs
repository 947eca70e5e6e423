using Parley.Core.Models;

namespace Parley.Tests.Prompt;

/// <summary>The token counter remembers long texts by content; a remembered count must be that exact text's count.</summary>
public sealed class TokenCounterTests
{
    [Fact]
    public void Texts_of_the_same_length_and_a_text_counted_twice_get_their_own_tokenizer_counts()
    {
        var counter = new TokenCounter();
        // Same length, very different token counts: words vs. one run of digits and punctuation.
        var words = string.Join(' ', Enumerable.Repeat("hello", 40));
        var symbols = string.Concat(Enumerable.Repeat("9;", words.Length / 2)) + (words.Length % 2 == 1 ? "9" : "");
        Assert.Equal(words.Length, symbols.Length);
        Assert.True(words.Length >= TokenCounter.MinCachedLength);

        var first = counter.Count(words);
        var second = counter.Count(symbols);
        Assert.NotEqual(first, second);
        Assert.Equal(first, counter.Count(new string(words.AsSpan()))); // a copy of the text, not the same string object
        Assert.Equal(second, counter.Count(symbols));
        Assert.Equal(first, new TokenCounter().Count(words));
        Assert.Equal(first + 4, counter.CountMessage(words));
    }

    [Fact]
    public void Short_and_empty_texts_are_counted_too()
    {
        var counter = new TokenCounter();
        Assert.Equal(0, counter.Count(null));
        Assert.Equal(0, counter.Count(""));
        Assert.Equal(2, counter.Count("hello world"));
    }
}
