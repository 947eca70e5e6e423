namespace Parley.Core.Models;

/// <summary>Tokens used by model calls. Reported by the provider; estimated with <see cref="TokenCounter"/> when it reports none.</summary>
/// <param name="InputTokens">Prompt tokens.</param>
/// <param name="OutputTokens">Generated tokens.</param>
public sealed record TokenUsage(long InputTokens, long OutputTokens)
{
    /// <summary>Input plus output tokens.</summary>
    public long TotalTokens => InputTokens + OutputTokens;

    /// <summary>No usage.</summary>
    public static TokenUsage Zero { get; } = new(0, 0);

    /// <summary>The sum of two usages.</summary>
    public static TokenUsage operator +(TokenUsage a, TokenUsage b) => new(a.InputTokens + b.InputTokens, a.OutputTokens + b.OutputTokens);
}

/// <summary>
/// Collects the usage of the model calls of one run. Passed down the chat pipeline in
/// <c>ChatOptions.AdditionalProperties[UsageMeter.Key]</c>; <see cref="UsageMeteringChatClient"/> adds to it.
/// Thread-safe.
/// </summary>
public sealed class UsageMeter
{
    /// <summary>The <c>AdditionalProperties</c> key.</summary>
    public const string Key = "parley.usage_meter";

    private long _input;
    private long _output;

    /// <summary>Usage so far.</summary>
    public TokenUsage Total => new(Interlocked.Read(ref _input), Interlocked.Read(ref _output));

    /// <summary>Adds one call's usage.</summary>
    public void Add(long inputTokens, long outputTokens)
    {
        Interlocked.Add(ref _input, inputTokens);
        Interlocked.Add(ref _output, outputTokens);
    }
}
