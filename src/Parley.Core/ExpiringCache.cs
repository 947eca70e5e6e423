using System.Collections.Concurrent;

namespace Parley.Core;

/// <summary>
/// Values kept in memory for a fixed time after they were added (API keys found valid, organizations read for the
/// budget check, key hashes). At most <c>maxEntries</c> are kept; when full, the cache starts over.
/// </summary>
/// <remarks>
/// A read from the database that began before a change committed must not put its now stale value in the cache after
/// the change dropped the old one: callers read <see cref="Generation"/> before the database and pass it to
/// <see cref="Add"/>, which keeps the value only when no <see cref="Invalidate"/> or <see cref="RemoveWhere"/> happened
/// since, and takes it out again when one happened while it was adding.
/// </remarks>
/// <typeparam name="TKey">The key.</typeparam>
/// <typeparam name="TValue">The value.</typeparam>
/// <param name="lifetime">How long an entry is used after it was added (<see cref="TimeSpan.Zero"/>: nothing is kept).</param>
/// <param name="maxEntries">Entries kept at most.</param>
/// <param name="comparer">Key equality (default: the key type's).</param>
public sealed class ExpiringCache<TKey, TValue>(TimeSpan lifetime, int maxEntries, IEqualityComparer<TKey>? comparer = null) where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, (TValue Value, long ExpiresAt)> _entries = new(comparer);
    private long _generation;

    /// <summary>How long an entry is used after it was added.</summary>
    public TimeSpan Lifetime { get; } = lifetime;

    /// <summary>Changes with every invalidation; read it before the database lookup and pass it to <see cref="Add"/>.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>The value kept for <paramref name="key"/> when there is one and it has not expired.</summary>
    public bool TryGet(TKey key, out TValue value)
    {
        if (_entries.TryGetValue(key, out var entry) && Environment.TickCount64 < entry.ExpiresAt)
        {
            value = entry.Value;
            return true;
        }
        value = default!;
        return false;
    }

    /// <summary>Keeps <paramref name="value"/>, read by a lookup that began at <paramref name="generation"/>.</summary>
    public void Add(TKey key, TValue value, long generation)
    {
        if (Lifetime <= TimeSpan.Zero || Generation != generation) return;
        if (_entries.Count >= maxEntries) _entries.Clear();
        var entry = (value, Environment.TickCount64 + (long)Lifetime.TotalMilliseconds);
        _entries[key] = entry;
        if (Generation != generation) _entries.TryRemove(KeyValuePair.Create(key, entry));
    }

    /// <summary>Drops every entry (call after a change committed).</summary>
    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _entries.Clear();
    }

    /// <summary>Drops the entries whose value <paramref name="stale"/> accepts (call after a change committed).</summary>
    public void RemoveWhere(Func<TValue, bool> stale)
    {
        Interlocked.Increment(ref _generation);
        foreach (var (key, entry) in _entries)
            if (stale(entry.Value)) _entries.TryRemove(key, out _);
    }
}
