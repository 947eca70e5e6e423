using Parley.Core.Agents.Flow;

namespace Parley.Core.Agents.Prompt;

/// <summary>Runs PROMPT agent versions: the model answers every inbound message, with the version's instructions and tools.</summary>
public sealed class PromptAgentExecutor(ModelTurnRunner runner) : IAgentExecutor
{
    /// <inheritdoc />
    public AgentMode Mode => AgentMode.PROMPT;

    /// <inheritdoc />
    public IAsyncEnumerable<AgentUpdate> ExecuteAsync(RunContext context, CancellationToken cancellationToken)
    {
        var definition = context.Version.Definition;
        var turn = new ModelTurn(
            context.Thread,
            context.Run.Id,
            definition.Model!,
            FlowTemplate.Render(definition.Instructions ?? "", context.Thread.Variables),
            definition.SmsMaxTokens,
            definition.SmsTemperature,
            definition.Tools ?? []);
        return runner.RunAsync(turn, cancellationToken);
    }
}
