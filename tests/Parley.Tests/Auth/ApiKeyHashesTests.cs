using Parley.Core.Organizations;
using Parley.Server.Auth;

namespace Parley.Tests.Auth;

/// <summary>The remembered hashes of valid keys (<see cref="ApiKeyHashes"/>) must give every key its own SHA-256, whatever was remembered.</summary>
public sealed class ApiKeyHashesTests
{
    [Fact]
    public void A_remembered_key_gets_its_hash_and_a_key_that_differs_in_one_character_or_its_length_gets_its_own()
    {
        var hashes = new ApiKeyHashes();
        var key = ApiKeyHasher.Generate();
        hashes.Remember(key, ApiKeyHasher.Hash(key));

        Assert.Equal(ApiKeyHasher.Hash(key), hashes.HashOf(new string(key.AsSpan()))); // the same key in another string
        var nearly = key[..^1] + (key[^1] == 'a' ? 'b' : 'a');
        Assert.Equal(ApiKeyHasher.Hash(nearly), hashes.HashOf(nearly));
        Assert.NotEqual(hashes.HashOf(key), hashes.HashOf(nearly));
        Assert.Equal(ApiKeyHasher.Hash(key + "x"), hashes.HashOf(key + "x"));
        Assert.Equal(ApiKeyHasher.Hash(key[..^1]), hashes.HashOf(key[..^1]));
    }

    [Fact]
    public void A_hash_remembered_wrongly_is_not_used_for_other_keys()
    {
        // Remember is only called with the hash a lookup found valid; even so, an entry belongs to its own key alone.
        var hashes = new ApiKeyHashes();
        var key = ApiKeyHasher.Generate();
        var other = ApiKeyHasher.Generate();
        hashes.Remember(key, ApiKeyHasher.Hash(key));
        Assert.Equal(ApiKeyHasher.Hash(other), hashes.HashOf(other));
    }
}
