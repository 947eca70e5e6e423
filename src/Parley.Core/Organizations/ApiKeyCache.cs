namespace Parley.Core.Organizations;

/// <summary>
/// Valid API keys by hash, kept in memory by a store so that authenticating a request does not query the database
/// each time (the lookup was a visible share of every POST in the ingest benchmark). Only keys found valid are kept,
/// each for <see cref="Lifetime"/>; unknown keys are always looked up. A key revoked through the same store is dropped
/// at once (<see cref="Revoked"/>); a key revoked elsewhere (another node on the same database, or by hand in the
/// database) is refused by this node once its entry expires, at most <see cref="Lifetime"/> later (docs/operations.md).
/// </summary>
/// <remarks>
/// A lookup that read the key before a revocation committed cannot put it back afterwards: it adds its result only
/// when no revocation happened since it started (<see cref="Generation"/>), and removes it again when one happened
/// while it was adding.
/// </remarks>
public sealed class ApiKeyCache
{
    /// <summary>How long a node trusts a key it found valid without asking the database again (10 s).</summary>
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromSeconds(10);

    // Keys are few (one per integration); this only bounds memory if something creates keys without end.
    private const int MaxKeys = 10_000;

    private readonly ExpiringCache<string, ApiKey> _keys;

    /// <summary>A cache whose entries live <paramref name="lifetime"/> (<see cref="TimeSpan.Zero"/>: nothing is kept).</summary>
    public ApiKeyCache(TimeSpan lifetime) => _keys = new(lifetime, MaxKeys, StringComparer.Ordinal);

    /// <summary>How long an entry is used before the database is asked again.</summary>
    public TimeSpan Lifetime => _keys.Lifetime;

    /// <summary>Changes with every revocation; read it before the database lookup and pass it to <see cref="Add"/>.</summary>
    public long Generation => _keys.Generation;

    /// <summary>The valid key with <paramref name="keyHash"/> when it is kept and not expired.</summary>
    public bool TryGet(string keyHash, out ApiKey key) => _keys.TryGet(keyHash, out key);

    /// <summary>Keeps <paramref name="key"/>, found valid by a lookup that began at <paramref name="generation"/>.</summary>
    public void Add(ApiKey key, long generation)
    {
        if (key.RevokedAt is null) _keys.Add(key.KeyHash, key, generation);
    }

    /// <summary>The key <paramref name="keyId"/> was revoked (call after the revocation committed): it is refused from now on.</summary>
    public void Revoked(Guid keyId) => _keys.RemoveWhere(key => key.Id == keyId);
}
