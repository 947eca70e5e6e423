using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Parley.Core;
using Parley.Core.Organizations;

namespace Parley.Server.Auth;

/// <summary>
/// The SHA-256 of secret API keys that were found valid, kept by the raw key so that a request with a known key is not
/// hashed again (the hash was ≈ 3 % of the server's CPU per message in the ingest benchmark, docs/benchmarks.md). Only
/// the hash is remembered, never whether the key is valid: every request still looks its key up by hash in the store,
/// so a revoked key is refused exactly as before.
/// </summary>
/// <remarks>
/// Finding a key here must not tell an attacker how close a guess is. Keys are compared with
/// <see cref="CryptographicOperations.FixedTimeEquals"/> (its time depends only on the length), and only after the
/// dictionary matched the 32-bit hash codes, which come from the runtime's per-process randomized string hash: a guess
/// reaches a comparison only by colliding with a valid key's hash code under a seed it cannot know. Only keys a lookup
/// found valid are added, so unknown keys cannot fill the memory; an entry is used for <see cref="Lifetime"/> after it
/// was added (a revoked key's entry is not refreshed and stops being used), and the map is emptied when it holds
/// <see cref="MaxKeys"/>. The raw keys stay in memory meanwhile, as the requests that carried them do until they are collected.
/// </remarks>
public sealed class ApiKeyHashes
{
    /// <summary>How long an entry is used after it was added (10 min).</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    /// <summary>Entries kept at most (keys are few: one per integration).</summary>
    public const int MaxKeys = 1024;

    private readonly ExpiringCache<string, string> _hashes = new(Lifetime, MaxKeys, ConstantTimeComparer.Instance);

    /// <summary>The lower-case hex SHA-256 of <paramref name="key"/> (<see cref="ApiKeyHasher.Hash"/>), from memory when known.</summary>
    public string HashOf(string key) => _hashes.TryGet(key, out var hash) ? hash : ApiKeyHasher.Hash(key);

    /// <summary>Remembers the hash of <paramref name="key"/>, which a lookup by <paramref name="hash"/> found valid.</summary>
    public void Remember(string key, string hash)
    {
        if (!_hashes.TryGet(key, out _)) _hashes.Add(key, hash, _hashes.Generation);
    }

    private sealed class ConstantTimeComparer : IEqualityComparer<string>
    {
        public static readonly ConstantTimeComparer Instance = new();

        public bool Equals(string? x, string? y) =>
            x is not null && y is not null && CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(x.AsSpan()), MemoryMarshal.AsBytes(y.AsSpan()));

        // Randomized per process (Marvin); its time depends only on the length.
        public int GetHashCode(string key) => key.GetHashCode();
    }
}
