using Parley.Core.Organizations;

namespace Parley.Tests.Widget;

/// <summary>Origins as browsers send them, and thread tokens that only their key and thread accept.</summary>
public sealed class PublishableKeysUnitTests
{
    [Theory]
    [InlineData("https://example.com", "https://example.com")]
    [InlineData("https://Example.COM:443/", "https://example.com")]
    [InlineData("http://example.com:80", "http://example.com")]
    [InlineData("http://localhost:8080", "http://localhost:8080")]
    [InlineData("http://[::1]:5000", "http://[::1]:5000")]
    [InlineData("https://bücher.example", "https://xn--bcher-kva.example")]
    [InlineData(" self ", "self")]
    [InlineData("example.com", null)]
    [InlineData("https://example.com/shop", null)]
    [InlineData("https://example.com?x=1", null)]
    [InlineData("https://user@example.com", null)]
    [InlineData("https://*.example.com", null)]
    [InlineData("ftp://example.com", null)]
    [InlineData("null", null)]
    [InlineData("", null)]
    public void NormalizeOrigin_gives_the_form_browsers_send_or_null(string input, string? expected) =>
        Assert.Equal(expected, PublishableKeys.NormalizeOrigin(input));

    [Fact]
    public void A_thread_token_opens_only_its_thread_with_its_key()
    {
        var key = NewKey();
        var thread = Guid.NewGuid();
        var token = PublishableKeys.ThreadToken(key, thread);

        Assert.StartsWith("tt_", token);
        Assert.Equal(token, PublishableKeys.ThreadToken(key, thread));
        Assert.True(PublishableKeys.IsThreadToken(key, thread, token));
        Assert.False(PublishableKeys.IsThreadToken(key, Guid.NewGuid(), token));
        Assert.False(PublishableKeys.IsThreadToken(NewKey(), thread, token));
        Assert.False(PublishableKeys.IsThreadToken(key with { TokenSecret = PublishableKeys.GenerateTokenSecret() }, thread, token));
        Assert.False(PublishableKeys.IsThreadToken(key, thread, token[..^1] + (token[^1] == 'A' ? 'B' : 'A')));
        Assert.False(PublishableKeys.IsThreadToken(key, thread, ""));
        Assert.False(PublishableKeys.IsThreadToken(key, thread, null));
    }

    [Fact]
    public void Generated_keys_are_prefixed_and_distinct()
    {
        var keys = Enumerable.Range(0, 100).Select(_ => PublishableKeys.GenerateKey()).ToList();
        Assert.All(keys, k => Assert.Matches("^pub_[A-Za-z0-9_-]{32}$", k));
        Assert.Equal(100, keys.Distinct().Count());
    }

    private static PublishableKey NewKey() => new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), "test", PublishableKeys.GenerateKey(), ["self"],
        PublishableKeys.GenerateTokenSecret(), DateTimeOffset.UtcNow, null);
}
