namespace Parley.Core.Agents;

/// <summary>
/// What an agent executor yields while it works on a run. The run engine turns each update into thread
/// changes and events. FLOW and PROMPT executors yield the same kinds.
/// </summary>
public abstract record AgentUpdate;

/// <summary>A complete outbound message. When <see cref="TextDeltaUpdate"/>s came before it, it completes that message.</summary>
/// <param name="Text">The message text.</param>
/// <param name="QuickReplies">Suggested answers (FLOW choices); empty when none.</param>
/// <param name="Usage">Tokens the model calls that produced it used, or null when no model was involved.</param>
public sealed record OutboundMessageUpdate(string Text, IReadOnlyList<string> QuickReplies, Models.TokenUsage? Usage = null) : AgentUpdate;

/// <summary>A piece of the text of the outbound message being generated (a model's token delta).</summary>
/// <param name="Delta">The new text.</param>
public sealed record TextDeltaUpdate(string Delta) : AgentUpdate;

/// <summary>Thread variables set or changed by the agent (only the changed ones).</summary>
public sealed record VariablesUpdate(IReadOnlyDictionary<string, string> Values) : AgentUpdate;

/// <summary>The FLOW position after a step.</summary>
public sealed record FlowStateUpdate(Flow.FlowState State) : AgentUpdate;

/// <summary>The thread leaves agent control: a human takes over. Later inbound messages start no run.</summary>
public sealed record HandOffUpdate(string? Reason) : AgentUpdate;

/// <summary>The agent ends the conversation: the thread is closed with <paramref name="Reason"/> as <c>closedReason</c>.</summary>
public sealed record CloseThreadUpdate(string Reason) : AgentUpdate;

/// <summary>The agent calls a tool (a FLOW webhook node or a model's tool call).</summary>
/// <param name="CallId">Id that pairs the call with its result.</param>
/// <param name="Name">Tool name.</param>
/// <param name="ArgumentsJson">Arguments as a JSON text.</param>
public sealed record ToolCallUpdate(string CallId, string Name, string ArgumentsJson) : AgentUpdate;

/// <summary>The result of a tool call.</summary>
/// <param name="CallId">Id of the call.</param>
/// <param name="Name">Tool name.</param>
/// <param name="ResultJson">Result as a JSON text (on error: <c>{"error": "..."}</c>).</param>
/// <param name="IsError">True when the call failed.</param>
public sealed record ToolResultUpdate(string CallId, string Name, string ResultJson, bool IsError) : AgentUpdate;
