namespace Parley.Core.Models;

/// <summary>
/// One configured model, <c>Parley:Models:&lt;name&gt;</c>. An agent version names the model it uses (<c>model: name</c>).
/// See docs/models.md.
/// </summary>
public sealed class ModelOptions
{
    /// <summary>
    /// <c>openai</c>: any OpenAI-compatible chat completions endpoint (OpenAI, Azure OpenAI's v1 API, Ollama's
    /// <c>/v1</c>, vLLM, llama.cpp server, LM Studio); <c>ollama</c>: Ollama's native API; <c>scripted</c>: a
    /// built-in model that streams a fixed text, for load tests and demos without a model.
    /// </summary>
    public string Provider { get; set; } = "openai";

    /// <summary>Base URL, e.g. <c>https://api.openai.com/v1</c> or <c>http://localhost:11434</c> (ollama). Default: the provider's public endpoint.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The provider's model id (<c>gpt-4o-mini</c>, <c>llama3.2</c>).</summary>
    public string? Model { get; set; }

    /// <summary>Name of the environment variable that holds the API key (never the key itself). Unset: no key is sent.</summary>
    public string? ApiKeyEnvironmentVariable { get; set; }

    /// <summary>Longest silence allowed while waiting for the model's next update (the first included), in seconds (default 60).</summary>
    public double TimeoutSeconds { get; set; } = 60;

    /// <summary>Retries of a transient failure (connection refused, 408, 429, 5xx) before anything was streamed (default 2).</summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>Delay before the first retry, in milliseconds; doubles each time (default 500).</summary>
    public int RetryDelayMs { get; set; } = 500;

    /// <summary>Token budget for the instructions plus the thread history sent as context (default 8,000 tokens).</summary>
    public int ContextTokens { get; set; } = 8_000;

    /// <summary>scripted: the text to stream (default: a short fixed sentence).</summary>
    public string? ScriptedText { get; set; }

    /// <summary>scripted: stream this many tokens instead of <see cref="ScriptedText"/> (<c>token1 token2 …</c>); 0 = use the text.</summary>
    public int ScriptedTokens { get; set; }

    /// <summary>
    /// scripted: delay before each token, in milliseconds (default 0): a token every that many milliseconds, or at once
    /// when the consumer took longer. Whole milliseconds (a fraction is dropped); under 1, no delay.
    /// </summary>
    public double ScriptedDelayMs { get; set; }

    /// <summary>
    /// scripted, with <see cref="ScriptedTokens"/>: end each token with <c>@</c> and the moment it was yielded, as
    /// <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> ticks (a monotonic clock shared by the processes of one
    /// machine: nanoseconds on Linux), so a benchmark client can measure the delay from model to client (default false).
    /// The first token also carries the moment the model was called, before its yield time (<c>token1@called@yielded</c>),
    /// so the client can tell the server's time before the model from the model's own.
    /// </summary>
    public bool ScriptedTimestamps { get; set; }

    /// <summary>
    /// scripted, with <see cref="ScriptedTimestamps"/>: stamp only the first token (<c>token1@called@yielded</c>); the
    /// others stay plain (default false). For a benchmark that measures only the first delta: every stamp adds ≈ 15
    /// characters to a token of ≈ 9, so stamping all of them made each stored reply, and the history every later turn
    /// reads and holds, ≈ 2.7× as long as the reply it stands for.
    /// </summary>
    public bool ScriptedTimestampsFirstTokenOnly { get; set; }
}

/// <summary>All configured models by name (<c>Parley:Models</c>).</summary>
public sealed class ModelCatalogOptions
{
    /// <summary>Models by name (case-insensitive).</summary>
    public Dictionary<string, ModelOptions> Models { get; } = new(StringComparer.OrdinalIgnoreCase);
}
