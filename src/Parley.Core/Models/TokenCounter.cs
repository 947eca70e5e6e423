using Microsoft.ML.Tokenizers;

namespace Parley.Core.Models;

/// <summary>
/// Counts tokens with a real BPE tokenizer (o200k_base, the encoding of the GPT-4o family, from
/// Microsoft.ML.Tokenizers). Other models' tokenizers differ by a few percent, which a budget tolerates.
/// </summary>
public sealed class TokenCounter
{
    private static readonly Lazy<Tokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    /// <summary>Tokens in <paramref name="text"/>.</summary>
    public int Count(string? text) => string.IsNullOrEmpty(text) ? 0 : Tokenizer.Value.CountTokens(text);

    /// <summary>Tokens a chat message costs: its text plus a small per-message overhead (4 tokens, as OpenAI's chat format adds).</summary>
    public int CountMessage(string? text) => Count(text) + 4;
}
