using System.Security.Cryptography;
using System.Text;

namespace Parley.Core.Organizations;

/// <summary>Creates publishable keys, issues and checks their thread tokens, and normalizes origins.</summary>
public static class PublishableKeys
{
    /// <summary>Prefix of every publishable key.</summary>
    public const string KeyPrefix = "pub_";

    /// <summary>Prefix of every thread token.</summary>
    public const string ThreadTokenPrefix = "tt_";

    /// <summary>The allowed-origin entry that stands for the Parley server's own origin (its start page).</summary>
    public const string SelfOrigin = "self";

    /// <summary>Generates a new key: <c>pub_</c> followed by 32 URL-safe base64 characters (192 random bits).</summary>
    public static string GenerateKey() => KeyPrefix + Base64Url(RandomNumberGenerator.GetBytes(24));

    /// <summary>Generates a token secret: base64 of 32 random bytes.</summary>
    public static string GenerateTokenSecret() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// The thread token of <paramref name="threadId"/> created with <paramref name="key"/>:
    /// <c>tt_</c> + URL-safe base64 of HMAC-SHA256(token secret, "parley-thread-token/v1" + key id + thread id).
    /// Deterministic, so nothing is stored per thread; unguessable without the secret.
    /// </summary>
    public static string ThreadToken(PublishableKey key, Guid threadId)
    {
        var message = Encoding.UTF8.GetBytes($"parley-thread-token/v1\n{key.Id:D}\n{threadId:D}");
        return ThreadTokenPrefix + Base64Url(HMACSHA256.HashData(Convert.FromBase64String(key.TokenSecret), message));
    }

    /// <summary>True when <paramref name="token"/> is the thread token of <paramref name="threadId"/> for <paramref name="key"/> (compared in constant time).</summary>
    public static bool IsThreadToken(PublishableKey key, Guid threadId, string? token)
    {
        if (string.IsNullOrEmpty(token)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(ThreadToken(key, threadId)), Encoding.UTF8.GetBytes(token));
    }

    /// <summary>
    /// Normalizes an origin as browsers send it in the <c>Origin</c> header (RFC 6454): lower-case scheme and host,
    /// no default port, no path. Returns <see cref="SelfOrigin"/> unchanged, or null when the text is not an http(s)
    /// origin (a path, a query, user info, a wildcard).
    /// </summary>
    public static string? NormalizeOrigin(string? origin)
    {
        if (string.IsNullOrWhiteSpace(origin)) return null;
        origin = origin.Trim();
        if (origin == SelfOrigin) return SelfOrigin;
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri)) return null;
        if (uri.Scheme is not ("http" or "https") || uri.UserInfo.Length > 0 || uri.Query.Length > 0 || uri.Fragment.Length > 0) return null;
        if (uri.AbsolutePath != "/") return null;
        if (origin.Contains('*')) return null;
        // IdnHost gives the punycode form browsers send; for IPv6 it drops the brackets, which Host keeps.
        var host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host : uri.IdnHost;
        return uri.IsDefaultPort ? $"{uri.Scheme}://{host}" : $"{uri.Scheme}://{host}:{uri.Port}";
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
