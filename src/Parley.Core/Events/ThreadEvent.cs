namespace Parley.Core.Events;

/// <summary>
/// One entry of a thread's append-only event log. <see cref="Sequence"/> is per thread, starts at 1 and strictly
/// increases with no gaps; it is the SSE <c>id:</c> in every dialect. Every stream is a projection of this log.
/// </summary>
/// <param name="ThreadId">The thread.</param>
/// <param name="Sequence">Per-thread sequence number (1, 2, 3…).</param>
/// <param name="Type">One of <see cref="ThreadEventTypes"/>.</param>
/// <param name="RunId">The run the event belongs to, or null.</param>
/// <param name="CreatedAt">When it was appended (UTC).</param>
/// <param name="Data">The payload, a JSON object text (UTF-16 string; shape per type in docs/web-chat-api.md).</param>
public sealed record ThreadEvent(Guid ThreadId, long Sequence, string Type, Guid? RunId, DateTimeOffset CreatedAt, string Data);

/// <summary>The event types of the thread log.</summary>
public static class ThreadEventTypes
{
    /// <summary>The thread was created. Data: the thread's id, agent and variables.</summary>
    public const string ThreadCreated = "thread.created";
    /// <summary>A message was stored. Data: the <see cref="Threads.ThreadMessage"/>.</summary>
    public const string MessageCreated = "message.created";
    /// <summary>A run was queued. Data: the run.</summary>
    public const string RunQueued = "run.queued";
    /// <summary>A run started. Data: the run.</summary>
    public const string RunStarted = "run.started";
    /// <summary>A run finished with success. Data: the run.</summary>
    public const string RunCompleted = "run.completed";
    /// <summary>A run was cancelled before it produced anything (the thread was closed or handed off meanwhile). Data: the run.</summary>
    public const string RunCancelled = "run.cancelled";
    /// <summary>A run failed. Data: the run, with <c>error</c>.</summary>
    public const string RunFailed = "run.failed";
    /// <summary>A run was stopped by a cancel request or a newer run (multitask strategy <c>interrupt</c>). Data: the run.</summary>
    public const string RunInterrupted = "run.interrupted";
    /// <summary>
    /// A run was rolled back (cancel action or multitask strategy <c>rollback</c>): the run and its messages were deleted.
    /// Data: the run as it was last, with status <c>interrupted</c>.
    /// </summary>
    public const string RunRolledBack = "run.rolled_back";
    /// <summary>
    /// Someone asked to stop a running run. Data: <c>{runId, action}</c> (<c>interrupt</c> or <c>rollback</c>). The engine
    /// executing the run observes it in the log and ends the run with <c>run.interrupted</c> or <c>run.rolled_back</c>.
    /// </summary>
    public const string RunCancelRequested = "run.cancel_requested";
    /// <summary>A piece of the text of an outbound message being generated. Data: <c>{messageId, delta}</c>.</summary>
    public const string MessageDelta = "message.delta";
    /// <summary>The thread's state or variables changed. Data: <c>{state, variables}</c>.</summary>
    public const string StateUpdated = "state.updated";
    /// <summary>The agent called a tool. Data: <c>{callId, name, arguments}</c>.</summary>
    public const string ToolCall = "tool.call";
    /// <summary>A tool returned. Data: <c>{callId, name, result, isError}</c>.</summary>
    public const string ToolResult = "tool.result";
    /// <summary>The thread was closed. Data: <c>{closedAt, closedReason}</c>.</summary>
    public const string ThreadClosed = "thread.closed";
}
