using Parley.Core.Runs;
using Parley.Core.Threads;

namespace Parley.Core.Agents;

/// <summary>Everything an executor needs to answer one run.</summary>
/// <param name="Thread">The thread as it was when the run started.</param>
/// <param name="Version">The pinned agent version.</param>
/// <param name="Run">The run.</param>
/// <param name="InputText">The inbound message that started the run ("" when there is none).</param>
public sealed record RunContext(ChatThread Thread, AgentVersion Version, Run Run, string InputText);

/// <summary>Produces an agent's reply for one run, as a stream of <see cref="AgentUpdate"/>s. One executor per <see cref="AgentMode"/>.</summary>
public interface IAgentExecutor
{
    /// <summary>The mode this executor serves.</summary>
    AgentMode Mode { get; }

    /// <summary>Works on the run, yielding updates as they happen. Throws to fail the run; the message becomes the run's error.</summary>
    IAsyncEnumerable<AgentUpdate> ExecuteAsync(RunContext context, CancellationToken cancellationToken);
}
