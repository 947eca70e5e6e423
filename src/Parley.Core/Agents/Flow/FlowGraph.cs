using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Core.Agents.Flow;

/// <summary>
/// A FLOW agent's conversation graph: named nodes, one of them the start. Written in agent files (docs/agents.md)
/// and checked by <see cref="FlowGraphValidator"/> when the file is loaded.
/// </summary>
public sealed record FlowGraph
{
    /// <summary>Id of the first node.</summary>
    public string Start { get; init; } = "";

    /// <summary>Nodes by id.</summary>
    public Dictionary<string, FlowNode> Nodes { get; init; } = new(StringComparer.Ordinal);
}

/// <summary>
/// One node of a <see cref="FlowGraph"/>. A flat record: which properties apply depends on <see cref="Type"/>:
/// <list type="bullet">
/// <item><c>say</c>: <see cref="Text"/>, <see cref="Next"/> (optional: without it the flow waits for the next message and restarts at <see cref="FlowGraph.Start"/>).</item>
/// <item><c>ask</c>: <see cref="Text"/>, <see cref="Variable"/>, <see cref="Validate"/>, <see cref="RetryText"/>, <see cref="MaxRetries"/>, <see cref="OnInvalid"/>, <see cref="Next"/>.</item>
/// <item><c>branch</c>: <see cref="Cases"/>, <see cref="Default"/>.</item>
/// <item><c>webhook</c>: <see cref="Url"/>, <see cref="Method"/>, <see cref="Headers"/>, <see cref="Body"/>, <see cref="TimeoutMs"/>, <see cref="Capture"/>, <see cref="Next"/>, <see cref="OnError"/>.</item>
/// <item><c>set</c>: <see cref="Values"/>, <see cref="Next"/>.</item>
/// <item><c>prompt</c>: <see cref="Prompt"/>, <see cref="Model"/>, <see cref="Next"/>: a model writes the reply (streamed, with the agent's tools).</item>
/// <item><c>handoff</c>: <see cref="Text"/>, <see cref="Reason"/>.</item>
/// <item><c>end</c>: <see cref="Text"/>, <see cref="Reason"/> (default <c>flow_completed</c>).</item>
/// </list>
/// Texts, URLs, header values and string leaves of <see cref="Body"/> are templates: <c>{{variable}}</c> is replaced by the thread variable (empty when unset).
/// </summary>
public sealed record FlowNode
{
    /// <summary>say | ask | branch | webhook | set | prompt | handoff | end.</summary>
    public string Type { get; init; } = "";

    /// <summary>The message the agent sends (templated).</summary>
    public string? Text { get; init; }

    /// <summary>The node that follows.</summary>
    public string? Next { get; init; }

    /// <summary>ask: the variable that receives the (normalized) answer.</summary>
    public string? Variable { get; init; }

    /// <summary>ask: how the answer is validated; absent means any non-empty text.</summary>
    public FlowValidation? Validate { get; init; }

    /// <summary>ask: sent when an answer fails validation (templated); defaults to a message naming the expected kind.</summary>
    public string? RetryText { get; init; }

    /// <summary>ask: how many invalid answers are retried before <see cref="OnInvalid"/> (default: unlimited).</summary>
    public int? MaxRetries { get; init; }

    /// <summary>ask: node to go to when <see cref="MaxRetries"/> is exhausted.</summary>
    public string? OnInvalid { get; init; }

    /// <summary>branch: cases tried in order; the first whose condition holds wins.</summary>
    public List<FlowBranchCase>? Cases { get; init; }

    /// <summary>branch: node when no case holds.</summary>
    public string? Default { get; init; }

    /// <summary>webhook: absolute http(s) URL (templated).</summary>
    public string? Url { get; init; }

    /// <summary>webhook: HTTP method (default POST).</summary>
    public string? Method { get; init; }

    /// <summary>webhook: extra request headers (values templated).</summary>
    public Dictionary<string, string>? Headers { get; init; }

    /// <summary>webhook: JSON body (string leaves templated). Default: <c>{"threadId", "variables", "message"}</c>.</summary>
    public JsonElement? Body { get; init; }

    /// <summary>webhook: timeout in milliseconds (default 10,000).</summary>
    public int? TimeoutMs { get; init; }

    /// <summary>webhook: variable name → dotted path into the JSON response (<c>data.score</c>, <c>items.0.id</c>, or <c>$</c> for the whole body).</summary>
    public Dictionary<string, string>? Capture { get; init; }

    /// <summary>webhook: node when the call fails (network error, timeout, non-2xx, non-JSON). Without it the run fails.</summary>
    public string? OnError { get; init; }

    /// <summary>set: variable name → value (templated).</summary>
    public Dictionary<string, string>? Values { get; init; }

    /// <summary>prompt: the block prompt, the model's instructions for this reply (templated).</summary>
    public string? Prompt { get; init; }

    /// <summary>prompt: the configured model to use; default the agent version's <c>model</c>.</summary>
    public string? Model { get; init; }

    /// <summary>handoff / end: the reason recorded (end: the thread's <c>closedReason</c>).</summary>
    public string? Reason { get; init; }
}

/// <summary>How an <c>ask</c> node validates an answer.</summary>
public sealed record FlowValidation
{
    /// <summary>text | email | phone | number | choice | regex.</summary>
    public string Kind { get; init; } = "text";

    /// <summary>choice: the allowed answers (matched case-insensitively, or by 1-based number). Also offered as quick replies.</summary>
    public List<string>? Choices { get; init; }

    /// <summary>regex: a .NET regular expression the whole answer must match.</summary>
    public string? Pattern { get; init; }

    /// <summary>number: inclusive lower bound.</summary>
    public double? Min { get; init; }

    /// <summary>number: inclusive upper bound.</summary>
    public double? Max { get; init; }
}

/// <summary>One case of a <c>branch</c> node.</summary>
public sealed record FlowBranchCase
{
    /// <summary>The condition.</summary>
    public FlowCondition If { get; init; } = new();

    /// <summary>Node when the condition holds.</summary>
    public string Next { get; init; } = "";
}

/// <summary>
/// A test on a variable (<see cref="Variable"/>) or on what the user just said (<see cref="Message"/> = true).
/// Exactly one subject and at least one operator; all given operators must hold. String comparisons ignore case
/// and surrounding white space.
/// </summary>
public sealed record FlowCondition
{
    /// <summary>Subject: a thread variable.</summary>
    public string? Variable { get; init; }

    /// <summary>Subject: the inbound message of this turn.</summary>
    public bool Message { get; init; }

    /// <summary>Subject equals this text.</summary>
    [JsonPropertyName("equals")]
    public string? EqualTo { get; init; }

    /// <summary>Subject differs from this text.</summary>
    public string? NotEquals { get; init; }

    /// <summary>Subject equals one of these.</summary>
    public List<string>? In { get; init; }

    /// <summary>Subject contains this text.</summary>
    public string? Contains { get; init; }

    /// <summary>Subject contains at least one of these.</summary>
    public List<string>? ContainsAny { get; init; }

    /// <summary>Subject matches this regular expression (anywhere).</summary>
    public string? Matches { get; init; }

    /// <summary>true: the subject is set and not empty; false: it is unset or empty.</summary>
    public bool? Exists { get; init; }

    /// <summary>Subject is a number greater than this.</summary>
    public double? GreaterThan { get; init; }

    /// <summary>Subject is a number less than this.</summary>
    public double? LessThan { get; init; }
}
