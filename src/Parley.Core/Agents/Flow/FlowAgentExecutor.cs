using System.Runtime.CompilerServices;
using Parley.Core.Agents.Prompt;

namespace Parley.Core.Agents.Flow;

/// <summary>Runs FLOW agent versions: one turn of the version's graph per inbound message; <c>prompt</c> nodes use the model runner.</summary>
public sealed class FlowAgentExecutor(FlowRunner runner, ModelTurnRunner models) : IAgentExecutor
{
    /// <inheritdoc />
    public AgentMode Mode => AgentMode.FLOW;

    /// <inheritdoc />
    public async IAsyncEnumerable<AgentUpdate> ExecuteAsync(RunContext context, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var definition = context.Version.Definition;
        var graph = definition.Flow
            ?? throw new InvalidOperationException($"Agent version {context.Version.Id} is in FLOW mode but has no flow.");
        var turn = new FlowTurn(context.Thread.Id, context.Thread.State.Flow, context.Thread.Variables, context.InputText,
            (prompt, model, variables, ct) => models.RunAsync(new ModelTurn(
                context.Thread with { Variables = variables },
                context.Run.Id,
                model ?? definition.Model ?? throw new FlowExecutionException("A prompt node needs a model: set model on the node or the agent."),
                prompt,
                definition.SmsMaxTokens,
                definition.SmsTemperature,
                definition.Tools ?? []), ct));
        await foreach (var update in runner.RunTurnAsync(graph, turn, cancellationToken))
            yield return update;
    }
}
