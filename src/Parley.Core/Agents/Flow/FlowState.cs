namespace Parley.Core.Agents.Flow;

/// <summary>
/// Where a thread stands in its flow, persisted with the thread. Null <see cref="Node"/> means the flow has not started.
/// </summary>
/// <param name="Node">The current node id: the <c>ask</c> awaiting an answer, or the node to resume at.</param>
/// <param name="Awaiting">True when <see cref="Node"/> is an <c>ask</c> whose question was sent and whose answer is the next inbound message.</param>
/// <param name="Retries">Invalid answers given to the current <c>ask</c> so far.</param>
/// <param name="Ended">True after an <c>end</c> or <c>handoff</c> node.</param>
public sealed record FlowState(string? Node, bool Awaiting, int Retries, bool Ended)
{
    /// <summary>The state of a thread whose flow has not started.</summary>
    public static FlowState Initial { get; } = new(null, false, 0, false);
}
