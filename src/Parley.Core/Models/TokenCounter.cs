using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace Parley.Core.Models;

/// <summary>
/// Counts tokens with a real BPE tokenizer (o200k_base, the encoding of the GPT-4o family, from
/// Microsoft.ML.Tokenizers). Other models' tokenizers differ by a few percent, which a budget tolerates.
/// </summary>
/// <remarks>
/// Every run counts its thread's history (to fit the context budget, and to estimate input usage when a provider
/// reports none), so the same messages are counted again on every turn: with long threads that was ≈ 4 % of the server's
/// CPU in the paced concurrent-runs benchmark. Texts of <see cref="MinCachedLength"/> characters or more are therefore
/// remembered by content (ordinal equality, so a cached count is always the count of that exact text), up to
/// <see cref="MaxCachedCharacters"/> characters in all; past that the cache starts over.
/// </remarks>
public sealed class TokenCounter
{
    private static readonly Lazy<Tokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    /// <summary>Texts shorter than this (characters) are counted every time: tokenizing them costs less than remembering them.</summary>
    public const int MinCachedLength = 64;

    /// <summary>Characters of text the cache holds at most (16 MiB of UTF-16).</summary>
    public const int MaxCachedCharacters = 8 * 1024 * 1024;

    private readonly ConcurrentDictionary<string, int> _cache = new(StringComparer.Ordinal);
    private long _cachedCharacters;

    /// <summary>Tokens in <paramref name="text"/>.</summary>
    public int Count(string? text)
    {
        if (string.IsNullOrEmpty(text)) return 0;
        if (text.Length < MinCachedLength) return Tokenizer.Value.CountTokens(text);
        if (_cache.TryGetValue(text, out var cached)) return cached;
        var count = Tokenizer.Value.CountTokens(text);
        if (text.Length > MaxCachedCharacters / 8) return count; // one huge text would flush everything else
        if (Interlocked.Add(ref _cachedCharacters, text.Length) > MaxCachedCharacters)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cachedCharacters, text.Length);
        }
        _cache.TryAdd(text, count);
        return count;
    }

    /// <summary>Tokens a chat message costs: its text plus a small per-message overhead (4 tokens, as OpenAI's chat format adds).</summary>
    public int CountMessage(string? text) => Count(text) + 4;
}
