using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Parley.Core.Events;
using Parley.Core.Runs;

namespace Parley.Core.Threads;

/// <summary>
/// Everything one atomic write does to a thread: the new thread row, new messages, new or updated runs and the
/// events that announce them. Built by a decision function that <see cref="Storage.IThreadStore.UpdateThreadAsync{TResult}(Guid, Func{ThreadChange, TResult}, CancellationToken)"/>
/// calls with the thread as stored, under the thread's write lock, so sequence numbers and read-modify-write of
/// state are race-free. A change with no events writes nothing.
/// </summary>
public sealed class ThreadChange
{
    private readonly List<ThreadEvent> _events = [];
    private readonly List<ThreadMessage> _messages = [];
    private readonly List<Run> _runs = [];
    private readonly List<Guid> _deletedRuns = [];

    /// <summary>Starts a change of <paramref name="current"/> at time <paramref name="now"/>.</summary>
    public ThreadChange(ChatThread current, DateTimeOffset now)
    {
        Original = current;
        _thread = current;
        Now = now;
    }

    /// <summary>The thread as it was read.</summary>
    public ChatThread Original { get; }

    // The thread as last set, and whether events were appended since (their sequence and time are applied when the
    // thread is next read): a streaming run's write appends a delta and never reads the thread, and a copy of the
    // thread record per appended event was 9 % of the bytes allocated in the paced concurrent-runs benchmark.
    private ChatThread _thread;
    private bool _appendedSinceSet;
    private bool _threadSet;
    private bool _appendedBesidesDeltas;

    /// <summary>
    /// The thread as it will be written; replace it with <c>with</c> expressions. Its <see cref="ChatThread.LastSequence"/>
    /// follows the appended events, and its <see cref="ChatThread.UpdatedAt"/> moves to <see cref="Now"/> with any event
    /// but a <c>message.delta</c>: the deltas of a streaming reply do not update the thread, the message they make does.
    /// </summary>
    public ChatThread Thread
    {
        get
        {
            if (_appendedSinceSet)
            {
                _thread = _thread with { LastSequence = LastSequence, UpdatedAt = _appendedBesidesDeltas ? Now : _thread.UpdatedAt };
                _appendedSinceSet = false;
            }
            return _thread;
        }
        set
        {
            _thread = value;
            _appendedSinceSet = false;
            _threadSet = true;
        }
    }

    /// <summary>The thread's last sequence number after this change: the original's plus the events appended.</summary>
    public long LastSequence => Original.LastSequence + _events.Count;

    /// <summary>
    /// True when the thread's own fields are as read, apart from <see cref="ChatThread.LastSequence"/> and
    /// <see cref="ChatThread.UpdatedAt"/>, which appending moves (<see cref="ChatThread.UpdatedAt"/> only with an event
    /// that is not a <c>message.delta</c>): the change only appends events, messages or runs (a store may then update
    /// just those two columns).
    /// </summary>
    public bool OnlyAppends => !_threadSet || Thread with { LastSequence = Original.LastSequence, UpdatedAt = Original.UpdatedAt } == Original;

    /// <summary>
    /// True when the change appends <c>message.delta</c> events and nothing else (no message, run or other event, no
    /// field of the thread): the thread's row is then as it was but for its last sequence, which a store may read from
    /// its log instead of writing it (SQLite: a streaming reply no longer rewrites the thread's row per delta).
    /// </summary>
    public bool OnlyDeltas => _events.Count > 0 && !_appendedBesidesDeltas && OnlyAppends;

    /// <summary>The time of the change (UTC), used for timestamps.</summary>
    public DateTimeOffset Now { get; }

    /// <summary>Events to append, with their sequence numbers.</summary>
    public IReadOnlyList<ThreadEvent> Events => _events;

    /// <summary>Messages to insert.</summary>
    public IReadOnlyList<ThreadMessage> Messages => _messages;

    /// <summary>Runs to insert or update.</summary>
    public IReadOnlyList<Run> Runs => _runs;

    /// <summary>
    /// Runs to delete together with their messages (inbound and outbound: every message whose <c>runId</c> is the run).
    /// Only a rollback deletes; its event stays in the log, which is append-only.
    /// </summary>
    public IReadOnlyList<Guid> DeletedRuns => _deletedRuns;

    /// <summary>True when the change appends nothing (and so writes nothing).</summary>
    public bool IsEmpty => _events.Count == 0;

    /// <summary>Appends an event whose data is <paramref name="data"/> serialized with <paramref name="typeInfo"/>.</summary>
    /// <returns>The event, with the next sequence number of the thread.</returns>
    public ThreadEvent Append<T>(string type, Guid? runId, T data, JsonTypeInfo<T> typeInfo) =>
        AppendRaw(type, runId, JsonSerializer.Serialize(data, typeInfo));

    /// <summary>Appends an event whose data is an already serialized JSON object.</summary>
    public ThreadEvent AppendRaw(string type, Guid? runId, string dataJson)
    {
        var sequence = Original.LastSequence + _events.Count + 1;
        var e = new ThreadEvent(Original.Id, sequence, type, runId, Now, dataJson);
        _events.Add(e);
        _appendedSinceSet = true;
        if (type != ThreadEventTypes.MessageDelta) _appendedBesidesDeltas = true;
        return e;
    }

    /// <summary>Stores <paramref name="message"/> and appends its <c>message.created</c> event; returns the message with its sequence.</summary>
    public ThreadMessage AddMessage(ThreadMessage message)
    {
        var stored = message with { Sequence = Original.LastSequence + _events.Count + 1 };
        Append(ThreadEventTypes.MessageCreated, stored.RunId, stored, CoreJsonContext.Payloads.ThreadMessage);
        _messages.Add(stored);
        return stored;
    }

    /// <summary>Inserts or updates <paramref name="run"/> and appends <paramref name="eventType"/> announcing it.</summary>
    public Run SaveRun(Run run, string eventType)
    {
        _runs.RemoveAll(r => r.Id == run.Id);
        _runs.Add(run);
        Append(eventType, run.Id, run, CoreJsonContext.Payloads.Run);
        return run;
    }

    /// <summary>
    /// Rolls <paramref name="run"/> back: deletes it and its messages and appends <c>run.rolled_back</c> (data: the run
    /// as it was, with status <c>interrupted</c>). Events the run appended before stay in the log.
    /// </summary>
    public void RollBackRun(Run run)
    {
        _runs.RemoveAll(r => r.Id == run.Id);
        _messages.RemoveAll(m => m.RunId == run.Id);
        _deletedRuns.Add(run.Id);
        Append(ThreadEventTypes.RunRolledBack, run.Id, run with { Status = RunStatus.interrupted, EndedAt = run.EndedAt ?? Now }, CoreJsonContext.Payloads.Run);
    }

    /// <summary>Replaces the thread's state and/or variables and appends a <c>state.updated</c> event.</summary>
    public void UpdateState(ChatThreadState? state = null, IReadOnlyDictionary<string, string>? variables = null, Guid? runId = null)
    {
        Thread = Thread with { State = state ?? Thread.State, Variables = variables ?? Thread.Variables };
        Append(ThreadEventTypes.StateUpdated, runId, new StateUpdatedData(Thread.State, Thread.Variables), CoreJsonContext.Payloads.StateUpdatedData);
    }

    /// <summary>Closes the thread with <paramref name="reason"/> and appends <c>thread.closed</c>. Does nothing when it is already closed.</summary>
    public void Close(string reason, Guid? runId = null)
    {
        if (!Thread.IsActive) return;
        Thread = Thread with { IsActive = false, ClosedAt = Now, ClosedReason = reason };
        Append(ThreadEventTypes.ThreadClosed, runId, new ThreadClosedData(Now, reason), CoreJsonContext.Payloads.ThreadClosedData);
    }
}

/// <summary>Data of a <c>state.updated</c> event.</summary>
/// <param name="State">The thread's state.</param>
/// <param name="Variables">All thread variables.</param>
public sealed record StateUpdatedData(ChatThreadState State, IReadOnlyDictionary<string, string> Variables);

/// <summary>Data of a <c>thread.closed</c> event.</summary>
/// <param name="ClosedAt">When (UTC).</param>
/// <param name="ClosedReason">Why.</param>
public sealed record ThreadClosedData(DateTimeOffset ClosedAt, string ClosedReason);

/// <summary>Data of a <c>message.delta</c> event.</summary>
/// <param name="MessageId">The outbound message being generated.</param>
/// <param name="Delta">The new text.</param>
public readonly record struct MessageDeltaData(Guid MessageId, string Delta);

/// <summary>Data of a <c>run.cancel_requested</c> event: the executing engine (on whichever node) stops the run.</summary>
/// <param name="RunId">The run to stop.</param>
/// <param name="Action"><c>interrupt</c> (keep what the run stored) or <c>rollback</c> (delete the run and its messages).</param>
public sealed record RunCancelRequestedData(Guid RunId, string Action);

/// <summary>Data of a <c>tool.call</c> event.</summary>
/// <param name="CallId">Pairs the call with its result.</param>
/// <param name="Name">Tool name.</param>
/// <param name="Arguments">Arguments (JSON).</param>
public sealed record ToolCallData(string CallId, string Name, JsonElement Arguments);

/// <summary>Data of a <c>tool.result</c> event.</summary>
/// <param name="CallId">Pairs the result with its call.</param>
/// <param name="Name">Tool name.</param>
/// <param name="Result">Result (JSON).</param>
/// <param name="IsError">True when the call failed.</param>
public sealed record ToolResultData(string CallId, string Name, JsonElement Result, bool IsError);

/// <summary>Data of a <c>thread.created</c> event.</summary>
/// <param name="ThreadId">The thread.</param>
/// <param name="AgentId">Its agent (null for an agent-server thread, which gets one with its first run).</param>
/// <param name="AgentVersionId">The pinned version, or null.</param>
/// <param name="Metadata">Metadata as given.</param>
/// <param name="Variables">Initial variables.</param>
public sealed record ThreadCreatedData(Guid ThreadId, Guid? AgentId, Guid? AgentVersionId, IReadOnlyDictionary<string, string> Metadata, IReadOnlyDictionary<string, string> Variables);
