using System.Security.Cryptography;
using System.Text;

namespace Parley.Core.Organizations;

/// <summary>Creates API keys and hashes them for storage and lookup.</summary>
public static class ApiKeyHasher
{
    /// <summary>Prefix of every key Parley generates, so a leaked key is recognizable in a secret scan.</summary>
    public const string KeyPrefix = "pk_";

    /// <summary>Returns the lower-case hex SHA-256 of <paramref name="key"/> (64 characters).</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Generates a new random key: <c>pk_</c> followed by 43 URL-safe base64 characters (256 bits).</summary>
    public static string Generate() => KeyPrefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>Compares two hashes in constant time.</summary>
    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
