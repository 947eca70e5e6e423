namespace Parley.Core.Runs;

/// <summary>Where a run stands (DESIGN.md: pending → running → success | error | interrupted | cancelled).</summary>
public enum RunStatus
{
    /// <summary>Queued behind the thread's earlier runs.</summary>
    pending,
    /// <summary>Executing.</summary>
    running,
    /// <summary>Finished normally.</summary>
    success,
    /// <summary>Failed; <see cref="Run.Error"/> says why.</summary>
    error,
    /// <summary>Stopped by a newer run or a cancel request.</summary>
    interrupted,
    /// <summary>Cancelled before it started.</summary>
    cancelled,
}

/// <summary>One agent turn on a thread, normally started by an inbound message. Runs on one thread never overlap.</summary>
/// <param name="Id">Run id (UUID).</param>
/// <param name="ThreadId">The thread.</param>
/// <param name="OrganizationId">Owning organization.</param>
/// <param name="AgentVersionId">The agent version that answers.</param>
/// <param name="InputMessageId">The inbound message that started it, or null.</param>
/// <param name="Status">Current status.</param>
/// <param name="CreatedAt">When it was queued (UTC).</param>
/// <param name="StartedAt">When it started running (UTC), or null.</param>
/// <param name="EndedAt">When it ended (UTC), or null.</param>
/// <param name="Error">Why it failed, or null.</param>
/// <param name="Usage">Tokens the run's model calls used (null when none were made).</param>
public sealed record Run(
    Guid Id,
    Guid ThreadId,
    Guid OrganizationId,
    Guid AgentVersionId,
    Guid? InputMessageId,
    RunStatus Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? EndedAt,
    string? Error,
    Models.TokenUsage? Usage = null)
{
    /// <summary>True for success, error, interrupted and cancelled.</summary>
    public bool IsFinished => Status is not (RunStatus.pending or RunStatus.running);
}

/// <summary>What a cancel does to a run (agent-server dialect: <c>action</c> of the cancel endpoint and the multitask strategies).</summary>
public static class CancelActions
{
    /// <summary>Stop the run and keep what it stored; its status becomes <c>interrupted</c>.</summary>
    public const string Interrupt = "interrupt";

    /// <summary>Stop the run and delete it with its messages (the log keeps its events and records <c>run.rolled_back</c>).</summary>
    public const string Rollback = "rollback";
}

/// <summary>What happens when a run is created on a thread that has a pending or running run (agent-server <c>multitask_strategy</c>).</summary>
public enum MultitaskStrategy
{
    /// <summary>Refuse the new run.</summary>
    reject,
    /// <summary>Queue the new run behind the others (the default).</summary>
    enqueue,
    /// <summary>Interrupt the thread's pending and running runs, then run the new one.</summary>
    interrupt,
    /// <summary>Roll back the thread's pending and running runs, then run the new one.</summary>
    rollback,
}
