using System.Text.Json;

namespace Parley.Core.Agents.Tools;

/// <summary>
/// A tool an agent version offers its model (docs/agents.md, "Tools"). <see cref="Type"/> is <c>webhook</c> (an HTTP
/// endpoint) or one of the built-ins <c>end_conversation</c>, <c>set_variable</c>, <c>hand_off</c>.
/// </summary>
public sealed record ToolDefinition
{
    /// <summary>The name the model calls (1–64 of <c>a-z A-Z 0-9 _ -</c>); built-ins default to their type.</summary>
    public string? Name { get; init; }

    /// <summary>webhook | end_conversation | set_variable | hand_off.</summary>
    public string Type { get; init; } = "webhook";

    /// <summary>What the tool does, for the model.</summary>
    public string? Description { get; init; }

    /// <summary>webhook: absolute http(s) URL the call is POSTed to.</summary>
    public string? Url { get; init; }

    /// <summary>webhook: JSON Schema of the arguments object. Arguments that fail it go back to the model as an error, never to the webhook.</summary>
    public JsonElement? Parameters { get; init; }

    /// <summary>webhook: timeout in milliseconds (default 10,000).</summary>
    public int? TimeoutMs { get; init; }

    /// <summary>
    /// webhook: name of the environment variable holding the HMAC-SHA256 secret. Every request carries
    /// <c>X-Parley-Timestamp</c> (Unix seconds) and <c>X-Parley-Signature: sha256=&lt;hex HMAC of "timestamp.body"&gt;</c>.
    /// </summary>
    public string? SecretEnvironmentVariable { get; init; }

    /// <summary>The effective name.</summary>
    public string EffectiveName => Name ?? Type;
}
