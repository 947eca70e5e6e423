using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;

namespace Parley.Core.Threads;

/// <summary>The result of accepting an inbound message.</summary>
/// <param name="Message">The stored message.</param>
/// <param name="Run">The run queued to answer it, or null (discardInboundSms, or the thread is handed off to a human).</param>
/// <param name="WindowExpiresIn">Seconds left in the thread's inactivity window, which the message restarted.</param>
public sealed record InboundMessageAccepted(ThreadMessage Message, Run? Run, long WindowExpiresIn);

/// <summary>
/// The dialect-neutral thread operations: create, post an inbound message, close, expire. Enforces the rules every
/// dialect shares (organization scoping, closed threads, the inactivity window, queueing of runs) and throws
/// <see cref="ParleyException"/> for a client's mistakes.
/// </summary>
public sealed class ThreadService(IThreadStore threads, IAgentStore agents, IOrganizationStore organizations, RunEngine runEngine, TimeProvider time, Diagnostics.ParleyMetrics metrics)
{
    /// <summary>The <c>closedReason</c> of a thread whose inactivity window ran out.</summary>
    public const string WindowExpiredReason = "window_expired";

    /// <summary>Creates a thread of <paramref name="agentId"/> for <paramref name="organizationId"/>, pinned to the agent's current version.</summary>
    /// <exception cref="ParleyException">NotFound when the agent is unknown or belongs to another organization (it is not revealed).</exception>
    public async Task<(ChatThread Thread, Agent Agent, AgentVersion Version)> CreateAsync(
        Guid organizationId,
        Guid agentId,
        IReadOnlyDictionary<string, string> metadata,
        IReadOnlyDictionary<string, string> variables,
        string channel,
        CancellationToken cancellationToken = default)
    {
        var agent = await agents.GetAgentAsync(agentId, cancellationToken);
        if (agent is null || agent.OrganizationId != organizationId)
            throw ParleyException.NotFound($"agentId: no agent {agentId} in this organization.");
        var version = await agents.GetAgentVersionAsync(agent.CurrentVersionId, cancellationToken)
            ?? throw new InvalidOperationException($"Agent {agentId} has no current version.");
        var now = time.GetUtcNow();
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = organizationId,
            AgentId = agent.Id,
            AgentVersionId = version.Id,
            Channel = channel,
            Metadata = new Dictionary<string, string>(metadata),
            Variables = new Dictionary<string, string>(variables),
            CreatedAt = now,
            UpdatedAt = now,
            WindowExpiresAt = now.AddSeconds(version.Definition.WindowSeconds),
        };
        var change = new ThreadChange(thread, now);
        change.Append(ThreadEventTypes.ThreadCreated, null,
            new ThreadCreatedData(thread.Id, agent.Id, version.Id, thread.Metadata, thread.Variables), CoreJsonContext.Payloads.ThreadCreatedData);
        await threads.CreateThreadAsync(change, cancellationToken);
        return (change.Thread, agent, version);
    }

    /// <summary>
    /// Creates a thread with no agent (the agent-server dialect names the assistant per run; the first run sets the
    /// thread's agent). It never expires for inactivity: that dialect has no inactivity window.
    /// </summary>
    /// <param name="organizationId">The owner.</param>
    /// <param name="threadId">The id the client chose, or null for a new one.</param>
    /// <param name="metadata">Metadata as given.</param>
    /// <param name="channel">The creating dialect (<c>AGENT_SERVER</c>).</param>
    /// <param name="pinned">A version to pin at once (an agent-scoped key's agent), or null for no agent until the first run.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>The thread, and false when a thread with <paramref name="threadId"/> existed already (it is returned unchanged).</returns>
    /// <exception cref="ParleyException">Conflict when <paramref name="threadId"/> is taken by another organization's thread (not revealed as such).</exception>
    public async Task<(ChatThread Thread, bool Created)> CreateWithoutAgentAsync(
        Guid organizationId, Guid? threadId, IReadOnlyDictionary<string, string> metadata, string channel, AgentVersion? pinned = null, CancellationToken cancellationToken = default)
    {
        if (threadId is { } wanted && await threads.GetThreadAsync(wanted, cancellationToken) is { } existing)
        {
            if (existing.OrganizationId != organizationId) throw new ParleyException(ParleyErrorKind.Conflict, $"thread_id: {wanted} cannot be used.");
            return (existing, false);
        }
        var now = time.GetUtcNow();
        var thread = new ChatThread
        {
            Id = threadId ?? Guid.CreateVersion7(now),
            OrganizationId = organizationId,
            AgentId = pinned?.AgentId,
            AgentVersionId = pinned?.Id,
            Channel = channel,
            Metadata = new Dictionary<string, string>(metadata),
            CreatedAt = now,
            UpdatedAt = now,
            WindowExpiresAt = NoWindow,
        };
        var change = new ThreadChange(thread, now);
        change.Append(ThreadEventTypes.ThreadCreated, null,
            new ThreadCreatedData(thread.Id, thread.AgentId, thread.AgentVersionId, thread.Metadata, thread.Variables), CoreJsonContext.Payloads.ThreadCreatedData);
        await threads.CreateThreadAsync(change, cancellationToken);
        return (change.Thread, true);
    }

    /// <summary>The window end of threads that never expire (agent-server threads).</summary>
    public static readonly DateTimeOffset NoWindow = new(9999, 12, 31, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Queues a run of <paramref name="version"/> on the thread with the given user messages as its input (one write:
    /// messages, run, and the thread's agent set to the run's), applying <paramref name="strategy"/> when the thread
    /// already has pending or running runs: <c>reject</c> refuses, <c>enqueue</c> queues behind them, <c>interrupt</c> and
    /// <c>rollback</c> stop them first (pending ones at once, a running one through a <c>run.cancel_requested</c> event
    /// that its engine observes). Busy is read just before the write: two concurrent creates may both see an idle thread
    /// (then both are queued, one after the other).
    /// </summary>
    /// <returns>The run, or null when <paramref name="strategy"/> is reject and the thread is busy.</returns>
    /// <exception cref="ParleyException">NotFound or Forbidden; BadRequest when the thread is closed; PaymentRequired when the budget is spent.</exception>
    public async Task<Run?> StartRunAsync(
        Guid organizationId, Guid threadId, AgentVersion version, IReadOnlyList<string> inputMessages, MultitaskStrategy strategy, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        await EnsureBalanceAsync(organizationId, cancellationToken);
        var active = await ActiveRunsAsync(threadId, cancellationToken);
        var run = await threads.UpdateThreadAsync(threadId, change =>
        {
            if (!change.Thread.IsActive) throw ParleyException.BadRequest($"thread_id: thread {threadId} is closed and accepts no runs.");
            if (active.Count > 0)
            {
                if (strategy == MultitaskStrategy.reject) return null;
                if (strategy is MultitaskStrategy.interrupt or MultitaskStrategy.rollback)
                    foreach (var other in active) RequestCancel(change, other.Id, strategy == MultitaskStrategy.rollback ? CancelActions.Rollback : CancelActions.Interrupt, other);
            }
            var runId = Guid.CreateVersion7(change.Now);
            Guid? inputId = null;
            foreach (var text in inputMessages)
                inputId = change.AddMessage(Inbound(change, organizationId, text, runId)).Id;
            change.Thread = change.Thread with { AgentId = version.AgentId, AgentVersionId = version.Id };
            return change.SaveRun(new Run(runId, threadId, organizationId, version.Id, inputId, RunStatus.pending, change.Now, null, null, null), ThreadEventTypes.RunQueued);
        }, cancellationToken);
        if (run is not null)
        {
            metrics.QueuedRuns.Add(1);
            runEngine.Schedule(threadId);
        }
        return run;
    }

    /// <summary>
    /// Cancels a run: a pending one ends at once (<c>interrupted</c>, or deleted for <c>rollback</c>); a running one gets a
    /// <c>run.cancel_requested</c> event, and the engine executing it (on any node) stops it and writes its end.
    /// </summary>
    /// <param name="organizationId">The caller's organization.</param>
    /// <param name="threadId">The thread.</param>
    /// <param name="runId">The run.</param>
    /// <param name="action"><see cref="CancelActions.Interrupt"/> or <see cref="CancelActions.Rollback"/>.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>The run as it stands after the request (still <c>running</c> until the engine stops it).</returns>
    /// <exception cref="ParleyException">NotFound for an unknown run or thread (or another organization's); Conflict when the run has ended.</exception>
    public async Task<Run> CancelRunAsync(Guid organizationId, Guid threadId, Guid runId, string action, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        var run = await threads.GetRunAsync(runId, cancellationToken);
        if (run is null || run.ThreadId != threadId) throw ParleyException.NotFound($"run_id: no run {runId} on thread {threadId}.");
        if (run.IsFinished) throw new ParleyException(ParleyErrorKind.Conflict, $"run_id: run {runId} has ended (status {run.Status}) and cannot be cancelled.");
        return await threads.UpdateThreadAsync(threadId, change => RequestCancel(change, runId, action, run), cancellationToken);
    }

    /// <summary>The thread's pending and running runs, oldest first.</summary>
    public async Task<IReadOnlyList<Run>> ActiveRunsAsync(Guid threadId, CancellationToken cancellationToken = default)
    {
        var recent = await threads.ListRunsAsync(threadId, 100, 0, cancellationToken);
        return recent.Where(r => !r.IsFinished).Reverse().ToList();
    }

    /// <summary>
    /// Deletes the thread with its messages, runs and log after asking its running run (if any) to stop.
    /// </summary>
    /// <exception cref="ParleyException">NotFound or Forbidden.</exception>
    public async Task DeleteAsync(Guid organizationId, Guid threadId, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        foreach (var run in await ActiveRunsAsync(threadId, cancellationToken))
            await threads.UpdateThreadAsync(threadId, change => RequestCancel(change, run.Id, CancelActions.Interrupt, run), cancellationToken);
        await threads.DeleteThreadAsync(threadId, cancellationToken);
    }

    // Under the thread's lock. Always appends the request; a run read as pending is also ended here. The run's row is
    // not readable inside the write, so "pending" comes from the caller's read just before. Both races converge: an
    // engine about to start the run sees the thread's sequence moved and re-reads (the run is no longer pending); an
    // engine that started it just before sees the request (appended after its run.started) and stops it, writing a
    // second end event for it.
    private Run RequestCancel(ThreadChange change, Guid runId, string action, Run? known)
    {
        change.Append(ThreadEventTypes.RunCancelRequested, runId, new RunCancelRequestedData(runId, action), CoreJsonContext.Payloads.RunCancelRequestedData);
        if (known is { Status: RunStatus.pending } pending)
        {
            metrics.QueuedRuns.Add(-1);
            var ended = pending with { Status = RunStatus.interrupted, EndedAt = change.Now };
            if (action == CancelActions.Rollback) change.RollBackRun(ended);
            else change.SaveRun(ended, ThreadEventTypes.RunInterrupted);
            return ended;
        }
        return known ?? new Run(runId, change.Thread.Id, change.Thread.OrganizationId, Guid.Empty, null, RunStatus.running, change.Now, null, null, null);
    }

    /// <summary>Returns the thread when it exists and belongs to <paramref name="organizationId"/>.</summary>
    /// <exception cref="ParleyException">NotFound for an unknown thread; Forbidden for another organization's.</exception>
    public async Task<ChatThread> GetAsync(Guid organizationId, Guid threadId, CancellationToken cancellationToken = default)
    {
        var thread = await threads.GetThreadAsync(threadId, cancellationToken) ?? throw ThreadNotFound(threadId);
        EnsureOwner(thread, organizationId);
        return thread;
    }

    /// <summary>
    /// Stores an inbound message, restarts the inactivity window and queues a run behind the thread's earlier runs
    /// (unless the agent version discards inbound messages or a human has the thread), all in one write.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed (a thread whose window ran out is closed first, with reason <c>window_expired</c>).</exception>
    public async Task<InboundMessageAccepted> PostInboundMessageAsync(Guid organizationId, Guid threadId, string text, CancellationToken cancellationToken = default) =>
        await PostInboundMessageAsync(organizationId, await GetAsync(organizationId, threadId, cancellationToken), text, cancellationToken);

    /// <summary>As <see cref="PostInboundMessageAsync(Guid, Guid, string, CancellationToken)"/>, for a thread the caller has already read and authorized.</summary>
    public async Task<InboundMessageAccepted> PostInboundMessageAsync(Guid organizationId, ChatThread thread, string text, CancellationToken cancellationToken = default)
    {
        EnsureOwner(thread, organizationId);
        var threadId = thread.Id;
        await EnsureBalanceAsync(organizationId, cancellationToken);
        if (thread.AgentVersionId is not { } versionId)
            throw ParleyException.BadRequest($"threadId: thread {threadId} has no agent yet: start a run with an assistant on it first (agent-server API).");
        var version = await agents.GetAgentVersionAsync(versionId, cancellationToken)
            ?? throw new InvalidOperationException($"Thread {threadId} pins a missing agent version.");
        var definition = version.Definition;

        var accepted = await threads.UpdateThreadAsync(threadId, change =>
        {
            var current = change.Thread;
            if (!current.IsActive) return null;
            if (current.WindowExpiresAt <= change.Now)
            {
                change.Close(WindowExpiredReason);
                return null;
            }
            var queueRun = !definition.DiscardInboundSms && current.State.Control == ChatThreadState.AgentControl;
            var runId = queueRun ? Guid.CreateVersion7(change.Now) : (Guid?)null;
            var message = change.AddMessage(Inbound(change, organizationId, text, runId));
            change.Thread = change.Thread with { WindowExpiresAt = change.Now.AddSeconds(definition.WindowSeconds) };
            var run = runId is { } id
                ? change.SaveRun(new Run(id, threadId, organizationId, version.Id, message.Id, RunStatus.pending, change.Now, null, null, null), ThreadEventTypes.RunQueued)
                : null;
            return new InboundMessageAccepted(message, run, definition.WindowSeconds);
        }, cancellationToken);

        if (accepted is null)
            throw ParleyException.BadRequest($"threadId: thread {threadId} is closed and accepts no messages.");
        if (accepted.Run is not null)
        {
            metrics.QueuedRuns.Add(1);
            runEngine.Schedule(threadId);
        }
        return accepted;
    }

    /// <summary>
    /// Refuses work when the organization has a token budget and its runs have used it up, so the request stores
    /// nothing and starts no model call. Reads the organization's running total (<see cref="Organizations.Organization.TokensUsed"/>,
    /// one row) rather than summing its runs.
    /// </summary>
    /// <exception cref="ParleyException">PaymentRequired when the budget is spent.</exception>
    public async Task EnsureBalanceAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        var organization = await organizations.GetOrganizationAsync(organizationId, cancellationToken);
        if (organization?.TokenBudget is not { } budget) return;
        if (organization.TokensUsed >= budget)
            throw new ParleyException(ParleyErrorKind.PaymentRequired,
                $"Insufficient balance: the organization's token budget of {budget} tokens is spent ({organization.TokensUsed} used).");
    }

    /// <summary>
    /// Stores a message written by a person (an operator after a hand-off) as an outbound message, with no run. It is
    /// part of the history the agent sees later.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed.</exception>
    public async Task<ThreadMessage> PostOperatorMessageAsync(Guid organizationId, Guid threadId, string text, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            if (!change.Thread.IsActive) throw ParleyException.BadRequest($"threadId: thread {threadId} is closed and accepts no messages.");
            return change.AddMessage(new ThreadMessage
            {
                Id = Guid.CreateVersion7(change.Now),
                ThreadId = threadId,
                OrganizationId = organizationId,
                Direction = MessageDirection.OUTBOUND,
                MessageBody = text,
                Status = MessageStatus.SENT,
                CreatedAt = change.Now,
            });
        }, cancellationToken);
    }

    /// <summary>
    /// Gives a handed-off thread back to the agent: <c>control</c> becomes <c>agent</c>, and a FLOW that ended at the
    /// hand-off starts over with the next message. Releasing a thread the agent has changes nothing.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed.</exception>
    public async Task<ChatThread> ReleaseAsync(Guid organizationId, Guid threadId, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            if (!change.Thread.IsActive) throw ParleyException.BadRequest($"threadId: thread {threadId} is closed.");
            if (change.Thread.State.Control == ChatThreadState.AgentControl) return change.Thread;
            var flow = change.Thread.State.Flow.Ended ? Agents.Flow.FlowState.Initial : change.Thread.State.Flow;
            change.UpdateState(state: new ChatThreadState(flow, ChatThreadState.AgentControl, null));
            return change.Thread;
        }, cancellationToken);
    }

    /// <summary>Closes the thread with <paramref name="reason"/>; closing a closed thread changes nothing.</summary>
    /// <exception cref="ParleyException">NotFound or Forbidden.</exception>
    public async Task<ChatThread> CloseAsync(Guid organizationId, Guid threadId, string reason, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            change.Close(reason);
            return change.Thread;
        }, cancellationToken);
    }

    /// <summary>Closes every active thread whose window ran out (reason <c>window_expired</c>); returns how many.</summary>
    public async Task<int> CloseExpiredAsync(CancellationToken cancellationToken = default)
    {
        var closed = 0;
        while (true)
        {
            var expired = await threads.ListExpiredThreadsAsync(time.GetUtcNow(), 100, cancellationToken);
            foreach (var id in expired)
            {
                var didClose = await threads.UpdateThreadAsync(id, change =>
                {
                    if (!change.Thread.IsActive || change.Thread.WindowExpiresAt > change.Now) return false;
                    change.Close(WindowExpiredReason);
                    return true;
                }, cancellationToken);
                if (didClose) closed++;
            }
            if (expired.Count < 100) return closed;
        }
    }

    /// <summary>Seconds left in the thread's inactivity window (0 when it ran out), rounded down.</summary>
    public long WindowSecondsLeft(ChatThread thread) =>
        Math.Max(0, (long)(thread.WindowExpiresAt - time.GetUtcNow()).TotalSeconds);

    private static void EnsureOwner(ChatThread thread, Guid organizationId)
    {
        if (thread.OrganizationId != organizationId)
            throw ParleyException.Forbidden($"threadId: thread {thread.Id} is not accessible with this API key.");
    }

    private static ParleyException ThreadNotFound(Guid threadId) => ParleyException.NotFound($"threadId: no thread {threadId}.");

    /// <summary>A user's message on the changed thread, answered by <paramref name="runId"/> (null: no run answers it).</summary>
    private static ThreadMessage Inbound(ThreadChange change, Guid organizationId, string text, Guid? runId) => new()
    {
        Id = Guid.CreateVersion7(change.Now),
        ThreadId = change.Thread.Id,
        OrganizationId = organizationId,
        Direction = MessageDirection.INBOUND,
        MessageBody = text,
        Status = MessageStatus.RECEIVED,
        RunId = runId,
        CreatedAt = change.Now,
    };
}
