namespace Parley.Core.Agents.Flow;

/// <summary>The input of one flow turn: where the thread stands and the message that triggered the turn.</summary>
/// <param name="ThreadId">The thread (sent to webhooks).</param>
/// <param name="State">The persisted flow position.</param>
/// <param name="Variables">The thread's variables.</param>
/// <param name="InboundText">The inbound message of this turn.</param>
/// <param name="Generate">
/// Runs a model for a <c>prompt</c> node: given the rendered block prompt, the model name (null = the agent's) and
/// the variables now, yields the reply's updates. Null when no model is available: a prompt node then fails the run.
/// </param>
public sealed record FlowTurn(
    Guid ThreadId,
    FlowState State,
    IReadOnlyDictionary<string, string> Variables,
    string InboundText,
    Func<string, string?, IReadOnlyDictionary<string, string>, CancellationToken, IAsyncEnumerable<AgentUpdate>>? Generate = null);
