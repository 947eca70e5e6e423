using System.Runtime.CompilerServices;

namespace Parley.Core.Agents.Flow;

/// <summary>Runs FLOW agent versions: one turn of the version's graph per inbound message.</summary>
public sealed class FlowAgentExecutor(FlowRunner runner) : IAgentExecutor
{
    /// <inheritdoc />
    public AgentMode Mode => AgentMode.FLOW;

    /// <inheritdoc />
    public async IAsyncEnumerable<AgentUpdate> ExecuteAsync(RunContext context, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var graph = context.Version.Definition.Flow
            ?? throw new InvalidOperationException($"Agent version {context.Version.Id} is in FLOW mode but has no flow.");
        var turn = new FlowTurn(context.Thread.Id, context.Thread.State.Flow, context.Thread.Variables, context.InputText);
        await foreach (var update in runner.RunTurnAsync(graph, turn, cancellationToken))
            yield return update;
    }
}
