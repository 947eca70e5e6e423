using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.InteropServices;
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
/// remembered by content: by the 128-bit XXH3 hash of their UTF-16 code units and their length (a collision between
/// two texts is as unlikely as a random 128-bit match, ≈ 2⁻¹²⁸ per pair), so an entry costs ≈ 50 bytes whatever the
/// text's length, and hashing a text costs a small fraction of tokenizing it. Up to <see cref="MaxCachedTexts"/> texts
/// are remembered; past that the cache starts over. (Keeping the texts themselves, bounded at 8 M characters, held
/// only ≈ 5,000 replies: with 1,000 threads streaming, the cache started over every few seconds and every turn
/// tokenized its history again — 7 % of the server's samples at 1,000 paced runs, docs/benchmarks.md.)
/// </remarks>
public sealed class TokenCounter
{
    private static readonly Lazy<Tokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    /// <summary>Texts shorter than this (characters) are counted every time: tokenizing them costs less than remembering them.</summary>
    public const int MinCachedLength = 64;

    /// <summary>Texts the cache remembers at most (≈ 50 bytes each: ≈ 13 MB when full).</summary>
    public const int MaxCachedTexts = 256 * 1024;

    private readonly ConcurrentDictionary<(UInt128 Hash, int Length), int> _cache = new();
    private int _cachedTexts; // ConcurrentDictionary.Count takes every lock of the dictionary

    /// <summary>Tokens in <paramref name="text"/>.</summary>
    public int Count(string? text)
    {
        if (string.IsNullOrEmpty(text)) return 0;
        if (text.Length < MinCachedLength) return Tokenizer.Value.CountTokens(text);
        var key = (XxHash128.HashToUInt128(MemoryMarshal.AsBytes(text.AsSpan())), text.Length);
        if (_cache.TryGetValue(key, out var cached)) return cached;
        var count = Tokenizer.Value.CountTokens(text);
        if (Interlocked.Increment(ref _cachedTexts) > MaxCachedTexts)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cachedTexts, 1);
        }
        _cache.TryAdd(key, count);
        return count;
    }

    /// <summary>Tokens a chat message costs: its text plus a small per-message overhead (4 tokens, as OpenAI's chat format adds).</summary>
    public int CountMessage(string? text) => Count(text) + 4;
}
