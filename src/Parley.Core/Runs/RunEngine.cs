using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Core.Runs;

/// <summary>Options of the run engine (<c>Parley:Runs</c>).</summary>
public sealed class RunEngineOptions
{
    /// <summary>Runs executing at once across all threads (default 256). Runs of one thread are always one at a time.</summary>
    public int MaxConcurrentRuns { get; set; } = 256;

    /// <summary>
    /// While more than <see cref="StreamBatchAboveRuns"/> runs execute on this node, a run stores its updates (tokens,
    /// tool calls and results, state changes, later messages; and so delivers them) at most once per tick of a clock of
    /// its own that ticks every this many ms (a write that took longer is followed at once), after its first output,
    /// which goes at once: a busy node writes several tokens of a reply per write instead of one, and clients get them
    /// in batches about this far apart.
    /// Default 100; 0 turns batching off. Must not be negative.
    /// </summary>
    /// <remarks>
    /// Why: at 1,000 replies streaming 40 tokens/s each, every token was a write of its own that rewrote its thread's
    /// page of the event log; batching for 100 ms took the server from 0.94–1.00 to 0.60–0.65 cores on 2 cores and the
    /// SQLite WAL's growth by a third (docs/benchmarks.md, "Busy nodes batch streamed tokens"). The wait ends early
    /// when the executor is done, and is skipped when a full write (<see cref="RunEngine.MaxUpdatesPerWrite"/>) is
    /// queued.
    /// </remarks>
    public int StreamBatchIntervalMs { get; set; } = 100;

    /// <summary>
    /// Runs executing on this node above which <see cref="StreamBatchIntervalMs"/> applies (default 100; 0 = always),
    /// counted as the run slots in use (<see cref="MaxConcurrentRuns"/>), so at or above that it never applies. Below it
    /// every update is written and delivered as soon as the store takes it. Must not be negative.
    /// </summary>
    public int StreamBatchAboveRuns { get; set; } = 100;
}

/// <summary>
/// Executes queued runs: one at a time per thread, in the order they were queued, many threads in parallel. The
/// updates an executor yields are stored in atomic thread writes, as many to a write as were queued when it began (on
/// a busy node gathered for up to <see cref="RunEngineOptions.StreamBatchIntervalMs"/>), and each write's events are
/// published once it commits. A run never depends on a client being connected.
/// At start it fails runs left <c>running</c> by a previous process and resumes the pending ones.
/// A run is stopped by a <c>run.cancel_requested</c> event in its thread's log (see <see cref="ThreadService.CancelRunAsync"/>),
/// which the engine executing it observes wherever the request was made.
/// Which node executes a run is decided by <see cref="IRunLeases"/>: on a shared store the engine claims each run with a lease, renews it
/// while the run works, and polls for runs nobody executes (docs/operations.md).
/// </summary>
public sealed partial class RunEngine(
    IThreadStore threads,
    IAgentStore agents,
    IEnumerable<IAgentExecutor> executors,
    ThreadEventWatcher eventWatcher,
    IOptions<RunEngineOptions> options,
    Diagnostics.ParleyMetrics metrics,
    TimeProvider time,
    ILogger<RunEngine> logger,
    IRunLeases leases) : BackgroundService
{
    // Per thread: a counter bumped by every Schedule. A drainer removes its entry only when the counter is unchanged,
    // so a run queued while the drainer was finishing is never missed.
    private readonly ConcurrentDictionary<Guid, long> _scheduled = new();
    private readonly ConcurrentDictionary<Guid, Task> _drainers = new();
    private readonly SemaphoreSlim _slots = new(options.Value.MaxConcurrentRuns, options.Value.MaxConcurrentRuns);
    private readonly Dictionary<AgentMode, IAgentExecutor> _executors = executors.ToDictionary(e => e.Mode);
    private CancellationToken _stopping = CancellationToken.None;

    /// <summary>Makes sure the thread's pending runs get executed. Cheap; safe to call from anywhere, any number of times.</summary>
    public void Schedule(Guid threadId)
    {
        while (true)
        {
            if (_scheduled.TryAdd(threadId, 0))
            {
                // Register the drainer before it can run, so it is always tracked while it runs and removes only itself.
                var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var self = new System.Runtime.CompilerServices.StrongBox<Task>();
                self.Value = DrainWhenStartedAsync(threadId, start.Task, self);
                _drainers[threadId] = self.Value;
                start.SetResult();
                return;
            }
            if (_scheduled.TryGetValue(threadId, out var seen) && _scheduled.TryUpdate(threadId, seen + 1, seen)) return;
        }
    }

    /// <summary>Whether a run is executing or scheduled on this node now (read by the idle trim, which waits while one is).</summary>
    public bool IsRunning => !_drainers.IsEmpty;

    /// <summary>Completes when no run is executing or scheduled (for tests and orderly shutdown).</summary>
    public async Task WhenIdleAsync(CancellationToken cancellationToken = default)
    {
        while (!_drainers.IsEmpty)
            await Task.WhenAll(_drainers.Values).WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        if (leases.IsShared)
        {
            await PollAsync(stoppingToken);
            return;
        }
        foreach (var run in await threads.ListUnfinishedRunsAsync(stoppingToken))
        {
            if (run.Status == RunStatus.running)
                await FailAsync(run, "The server stopped while the run was executing.", null, CancellationToken.None);
            else
                metrics.QueuedRuns.Add(1);
            Schedule(run.ThreadId);
        }
    }

    // Cluster mode: a run whose node died, or one queued by a node that died before it claimed it, is found here and
    // scheduled on this node; the claim decides whether this node gets it (any number of nodes may poll at once).
    private async Task PollAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                foreach (var threadId in await leases.ListThreadsNeedingWorkAsync(1000, stoppingToken))
                    Schedule(threadId);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                Log.PollFailed(logger, ex);
            }
            try { await Task.Delay(leases.PollInterval, time, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try { await WhenIdleAsync(cancellationToken); } catch (OperationCanceledException) { }
    }

    private async Task DrainWhenStartedAsync(Guid threadId, Task start, System.Runtime.CompilerServices.StrongBox<Task> self)
    {
        await start.ConfigureAwait(false);
        try
        {
            await DrainAsync(threadId);
        }
        finally
        {
            _drainers.TryRemove(new KeyValuePair<Guid, Task>(threadId, self.Value!));
        }
    }

    private async Task DrainAsync(Guid threadId)
    {
        try
        {
            while (true)
            {
                _scheduled.TryGetValue(threadId, out var seen);
                while (!_stopping.IsCancellationRequested)
                {
                    // A slot first, then the claim: a node that cannot start a run now does not hold one. A claim is not
                    // renewed before its run starts, so a claim that waited for a slot longer than a lease could be taken
                    // over by another node while this one starts the run anyway; and on a shared store a node with a
                    // free slot takes the run meanwhile.
                    await _slots.WaitAsync(CancellationToken.None);
                    try
                    {
                        // The thread's last sequence is read before the claim: if the thread is unchanged when the run
                        // starts (same sequence, under the thread's lock), the run is still pending — no cancel or
                        // rollback touched it in between, since every change appends an event.
                        if (await threads.GetThreadAsync(threadId, CancellationToken.None) is not { } thread) break; // deleted
                        var claim = await leases.ClaimNextAsync(threadId, CancellationToken.None);
                        if (claim.Abandoned is { } abandoned)
                        {
                            // The documented policy for a run whose node died mid-run: it ends as an error, with an event
                            // that says why, and the thread takes its next message. It is not re-run (its model calls and
                            // tool calls may have had effects already).
                            Log.RunAbandoned(logger, abandoned.Id);
                            await FailAsync(abandoned, AbandonedRunError, null, CancellationToken.None);
                            continue;
                        }
                        if (claim.Run is not { } run) break;
                        await ExecuteRunAsync(run, thread.LastSequence);
                    }
                    catch (KeyNotFoundException) { break; } // the thread was deleted while its run executed
                    finally { _slots.Release(); }
                }
                if (_scheduled.TryRemove(new KeyValuePair<Guid, long>(threadId, seen))) return;
            }
        }
        catch (Exception ex)
        {
            Log.DrainFailed(logger, ex, threadId);
            _scheduled.TryRemove(threadId, out _);
        }
    }

    private async Task ExecuteRunAsync(Run queued, long seenSequence)
    {
        var started = await threads.UpdateThreadAsync(queued.ThreadId, change =>
        {
            var thread = change.Thread;
            if (change.Original.LastSequence != seenSequence) return (Retry: true, Started: ((ChatThread Thread, Run Run)?)null); // changed meanwhile: read again
            if (!thread.IsActive || thread.State.Control != ChatThreadState.AgentControl)
            {
                change.SaveRun(queued with { Status = RunStatus.cancelled, EndedAt = change.Now }, ThreadEventTypes.RunCancelled);
                return (Retry: false, Started: null);
            }
            var run = change.SaveRun(queued with { Status = RunStatus.running, StartedAt = change.Now }, ThreadEventTypes.RunStarted);
            return (Retry: false, Started: (change.Thread, run));
        }, CancellationToken.None);
        if (started.Retry) return;
        metrics.QueuedRuns.Add(-1);
        if (started.Started is not { } s) return;
        var run = s.Run;
        if (run.StartedAt is { } startedAt) metrics.RunQueueWait.Record(Math.Max(0, (startedAt - run.CreatedAt).TotalMilliseconds));
        var progress = new RunProgress { StartedAt = time.GetTimestamp() };

        Log.RunStarted(logger, run.Id, run.ThreadId);
        using var runCancellation = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
        // Cancel requests travel through the thread's log, so one made on any node reaches this engine; the watcher
        // reads the log from the run's start (the same gap-free reader streams use) until the run ends.
        using var watching = new CancellationTokenSource();
        var watcher = WatchForCancelAsync(run, s.Thread.LastSequence, progress, runCancellation, watching.Token);
        using var renewal = new CancellationTokenSource();
        var leaseLost = leases.IsShared ? RenewLeaseAsync(run.Id, runCancellation, renewal.Token) : Task.FromResult(false);
        // Group commit: the executor queues updates; the writer commits everything queued since its last write in one
        // transaction, so a fast model is not slowed to one write per token.
        // Synchronous continuations: the writer loop picks an update up on the executor's own thread (it only queues the
        // write and awaits it), one thread hop fewer between the model's yield and the client (single-stream benchmark).
        var updates = Channel.CreateBounded<AgentUpdate>(new BoundedChannelOptions(UpdateQueueCapacity) { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });
        // Cancelled when the executor has yielded its last update: a write that waits to batch output goes at once then,
        // and its timer is disposed.
        using var executorDone = new CancellationTokenSource();
        var writer = WriteUpdatesAsync(updates.Reader, executorDone.Token, run, progress, runCancellation);
        Exception? failure = null;
        try
        {
            var version = await agents.GetAgentVersionAsync(run.AgentVersionId, runCancellation.Token)
                ?? throw new InvalidOperationException($"Agent version {run.AgentVersionId} does not exist.");
            if (!_executors.TryGetValue(version.Definition.Mode, out var executor))
                throw new InvalidOperationException($"No executor for {version.Definition.Mode} agents is configured.");
            var input = run.InputMessageId is { } inputId ? (await threads.GetMessageAsync(inputId, runCancellation.Token))?.MessageBody ?? "" : "";
            var context = new RunContext(s.Thread, version, run, input);
            await foreach (var update in executor.ExecuteAsync(context, runCancellation.Token))
                await updates.Writer.WriteAsync(update, runCancellation.Token);
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        updates.Writer.TryComplete();
        await executorDone.CancelAsync();
        try
        {
            await writer;
        }
        catch (Exception ex)
        {
            failure = ex; // a failed write explains the run's failure better than the cancellation it caused
        }

        await watching.CancelAsync();
        await watcher;
        await renewal.CancelAsync();
        if (await leaseLost)
        {
            // Another node found this run's lease expired and has ended it by the abandoned-run policy: writing an
            // end here too would end it twice.
            Log.LeaseLost(logger, run.Id);
            return;
        }

        if (progress.CancelAction is { } action)
        {
            await EndCancelledAsync(run, action, progress);
            Log.RunCancelled(logger, run.Id, action);
            metrics.RunDuration.Record(time.GetElapsedTime(progress.StartedAt).TotalMilliseconds, new KeyValuePair<string, object?>("status", "interrupted"));
            return;
        }
        if (failure is null)
        {
            await threads.UpdateThreadAsync(run.ThreadId, change =>
            {
                // A run that ends the conversation closes the thread in the same transaction as its own end, so no
                // reader ever sees a closed thread whose closing run is still open.
                if (progress.CloseReason is { } reason) change.Close(reason, run.Id);
                return change.SaveRun(run with { Status = RunStatus.success, EndedAt = change.Now, Usage = progress.Usage }, ThreadEventTypes.RunCompleted);
            }, CancellationToken.None);
            Log.RunCompleted(logger, run.Id);
            metrics.RunDuration.Record(time.GetElapsedTime(progress.StartedAt).TotalMilliseconds, new KeyValuePair<string, object?>("status", "success"));
            return;
        }
        var error = failure is OperationCanceledException && _stopping.IsCancellationRequested
            ? "The server stopped while the run was executing."
            : Describe(failure);
        Log.RunFailed(logger, failure, run.Id);
        await FailAsync(run, error, progress, CancellationToken.None);
        metrics.RunDuration.Record(time.GetElapsedTime(progress.StartedAt).TotalMilliseconds, new KeyValuePair<string, object?>("status", "error"));
    }

    /// <summary>The <c>error</c> of a run ended because the node executing it stopped renewing its lease.</summary>
    public const string AbandonedRunError = "The node executing the run stopped before the run ended (its lease expired); the run was not retried.";

    // Renews the run's lease until stopped; when the lease is lost, cancels the run and returns true.
    private async Task<bool> RenewLeaseAsync(Guid runId, CancellationTokenSource runCancellation, CancellationToken stop)
    {
        while (true)
        {
            try { await Task.Delay(leases.RenewInterval, time, stop); }
            catch (OperationCanceledException) { return false; }
            bool renewed;
            try { renewed = await leases.RenewAsync(runId, stop); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return false; }
            catch (Exception ex)
            {
                Log.RenewFailed(logger, ex, runId); // the database may be back before the lease runs out
                continue;
            }
            if (renewed) continue;
            await runCancellation.CancelAsync();
            return true;
        }
    }

    // Runs holding a slot on this node: executing, or a drainer about to claim one (or ending an abandoned one).
    private int ExecutingRuns => options.Value.MaxConcurrentRuns - _slots.CurrentCount;

    /// <summary>Queued updates per run before the executor waits for the writer.</summary>
    public const int UpdateQueueCapacity = 4096;

    /// <summary>Updates committed in one transaction at most.</summary>
    public const int MaxUpdatesPerWrite = 1024;

    private async Task WriteUpdatesAsync(ChannelReader<AgentUpdate> reader, CancellationToken executorDone, Run run, RunProgress progress, CancellationTokenSource runCancellation)
    {
        await Task.Yield();
        var batchInterval = TimeSpan.FromMilliseconds(options.Value.StreamBatchIntervalMs);
        // The batches' clock, created at the run's first wait: it ticks every batchInterval, and a write that waits goes
        // at the next tick (at once when one passed since the last write). One timer per run instead of a Task.Delay per
        // write, whose timer, promise and cancellation callback were ≈ 4 % of the server's allocations at 1,000 paced
        // replies (10,000 waits a second, docs/benchmarks.md). The executor's end disposes it (registered when it is
        // made, which disposes it at once if the executor is done already), and that ends a wait with false, without an
        // exception.
        PeriodicTimer? batchClock = null;
        var stopClock = default(CancellationTokenRegistration);
        // Sized for each write as it is taken (a reply yielded at once is a write of hundreds of updates): growing
        // from a small start allocated two or three arrays per run (5-7 % of the bytes allocated in the C = 1,000 burst).
        var batch = new List<AgentUpdate>();
        var deltas = new List<PreparedDelta?>();
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None))
            {
                // On a busy node, output after the first waits for the next tick of the batches' clock (or until the
                // executor is done; not at all when a full write is queued), gathering more tokens into one write. The
                // first output never waits, even when a write without output (a tool call, a state change) went less
                // than an interval before it: time to first token is what users feel. (An interval of 0: batching off.)
                if (progress.HasOutput && batchInterval > TimeSpan.Zero && reader.Count < MaxUpdatesPerWrite && !executorDone.IsCancellationRequested
                    && ExecutingRuns > options.Value.StreamBatchAboveRuns)
                {
                    if (batchClock is null)
                    {
                        batchClock = new PeriodicTimer(batchInterval, time);
                        stopClock = executorDone.Register(static clock => ((PeriodicTimer)clock!).Dispose(), batchClock);
                    }
                    await batchClock.WaitForNextTickAsync();
                }
                batch.EnsureCapacity(Math.Min(reader.Count, MaxUpdatesPerWrite));
                while (batch.Count < MaxUpdatesPerWrite && reader.TryRead(out var update)) batch.Add(update);
                deltas.EnsureCapacity(batch.Count);
                PrepareDeltas(batch, progress.PendingMessageId, time.GetUtcNow(), deltas);
                // The run's first output is as urgent as its start (time to first token); the rest of its stream yields
                // to the writes of other runs' first outputs and of users' messages.
                var priority = progress.HasOutput ? WritePriority.Bulk : WritePriority.Normal;
                var before = (progress.PendingMessageId, progress.PendingFromSequence, progress.Usage);
                try
                {
                    await threads.UpdateThreadAsync(run.ThreadId, change =>
                    {
                        for (var i = 0; i < batch.Count; i++) Apply(change, run, batch[i], progress, deltas[i]);
                        return true;
                    }, priority, CancellationToken.None);
                }
                catch
                {
                    // Nothing of a failed write was stored or sent: the run ends (FailAsync) with the reply it owed, where
                    // that reply's text starts and the usage as they were before it, not as its updates left them.
                    (progress.PendingMessageId, progress.PendingFromSequence, progress.Usage) = before;
                    throw;
                }
                deltas.Clear();
                if (!progress.FirstOutputRecorded && progress.HasOutput)
                {
                    progress.FirstOutputRecorded = true;
                    metrics.TimeToFirstOutput.Record(time.GetElapsedTime(progress.StartedAt).TotalMilliseconds);
                }
                batch.Clear();
            }
        }
        catch
        {
            await runCancellation.CancelAsync(); // stop the executor: its updates could not be stored
            throw;
        }
        finally
        {
            stopClock.Dispose();
            batchClock?.Dispose();
        }
    }

    /// <summary>Stops the run when a <c>run.cancel_requested</c> event for it appears in the thread's log.</summary>
    private async Task WatchForCancelAsync(Run run, long afterSequence, RunProgress progress, CancellationTokenSource runCancellation, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            var e = await eventWatcher.WaitForAsync(run.ThreadId, afterSequence,
                e => e.Type == ThreadEventTypes.RunCancelRequested && e.RunId == run.Id, cancellationToken);
            if (e is null) return; // the run ended first
            var request = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.RunCancelRequestedData);
            progress.CancelAction = request?.Action == CancelActions.Rollback ? CancelActions.Rollback : CancelActions.Interrupt;
            await runCancellation.CancelAsync();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // the run ended during a read of the store
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.CancelWatchFailed(logger, ex, run.Id); // the run goes on; it just cannot be cancelled any more
        }
    }

    /// <summary>
    /// Ends a run that a cancel request stopped. <c>interrupt</c> keeps what the run stored and marks the reply it owed
    /// failed (with the text streamed so far); <c>rollback</c> deletes the run and its messages (<see cref="ThreadChange.RollBackRun"/>).
    /// </summary>
    private async Task EndCancelledAsync(Run run, string action, RunProgress progress)
    {
        var pendingText = action == CancelActions.Rollback ? "" : await ReadPendingTextAsync(run, progress);
        await threads.UpdateThreadAsync(run.ThreadId, change =>
        {
            var ended = run with { Status = RunStatus.interrupted, EndedAt = change.Now, Usage = progress.Usage };
            if (action == CancelActions.Rollback)
            {
                change.RollBackRun(ended);
                return true;
            }
            if (progress.PendingMessageId is { } pending)
                change.AddMessage(new ThreadMessage
                {
                    Id = pending,
                    ThreadId = run.ThreadId,
                    OrganizationId = run.OrganizationId,
                    Direction = MessageDirection.OUTBOUND,
                    MessageBody = pendingText,
                    Status = MessageStatus.FAILED,
                    RunId = run.Id,
                    CreatedAt = change.Now,
                });
            if (progress.CloseReason is { } reason) change.Close(reason, run.Id);
            change.SaveRun(ended, ThreadEventTypes.RunInterrupted);
            return true;
        }, CancellationToken.None);
    }

    private async Task FailAsync(Run run, string error, RunProgress? progress, CancellationToken cancellationToken)
    {
        var pendingText = await ReadPendingTextAsync(run, progress);
        await threads.UpdateThreadAsync(run.ThreadId, change =>
        {
            // The reply the run owed is marked failed, with whatever text had streamed, so clients can show it.
            change.AddMessage(new ThreadMessage
            {
                Id = progress?.PendingMessageId ?? Guid.CreateVersion7(change.Now),
                ThreadId = run.ThreadId,
                OrganizationId = run.OrganizationId,
                Direction = MessageDirection.OUTBOUND,
                MessageBody = pendingText,
                Status = MessageStatus.FAILED,
                RunId = run.Id,
                CreatedAt = change.Now,
            });
            if (progress?.CloseReason is { } reason) change.Close(reason, run.Id);
            return change.SaveRun(run with { Status = RunStatus.error, EndedAt = change.Now, Error = error, Usage = progress?.Usage }, ThreadEventTypes.RunFailed);
        }, cancellationToken);
    }

    /// <summary>
    /// The text the run streamed for the reply it owed and did not finish (<see cref="RunProgress.PendingMessageId"/>),
    /// read back from the thread's log: the run's <c>message.delta</c> events of that message, from its first one
    /// (<see cref="RunProgress.PendingFromSequence"/>) on; "" when no reply was streaming. Read only when a run ends
    /// without its message (failed or interrupted): a run kept a copy of its reply's text as it streamed, one more
    /// builder per run that lived as long as the reply, for this rare end (docs/benchmarks.md). It is what clients were
    /// sent: a write that failed left none of its deltas in the log (and the run's progress as it was before it,
    /// WriteUpdatesAsync). When the log cannot be read the reply is stored without its text, and the run still ends. A
    /// server that stops fails every run still executing, each reading its reply back once.
    /// </summary>
    private async Task<string> ReadPendingTextAsync(Run run, RunProgress? progress)
    {
        if (progress?.PendingMessageId is not { } messageId) return "";
        var text = new StringBuilder();
        try
        {
            await foreach (var e in ThreadEventReader.ReadStoredAsync(threads, run.ThreadId, progress.PendingFromSequence - 1, long.MaxValue, CancellationToken.None))
            {
                if (e.Type != ThreadEventTypes.MessageDelta || e.RunId != run.Id) continue;
                var delta = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.MessageDeltaData);
                if (delta.MessageId == messageId) text.Append(delta.Delta);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.PendingTextUnreadable(logger, ex, run.Id);
            return "";
        }
        return text.ToString();
    }

    private static string Describe(Exception exception) => exception switch
    {
        System.ClientModel.ClientResultException { Status: > 0 } e => $"The model provider answered HTTP {e.Status}: {FirstLine(e.Message)}",
        System.ClientModel.ClientResultException e => $"The model provider could not be reached: {FirstLine(e.Message)}",
        HttpRequestException { StatusCode: { } status } e => $"The model provider answered HTTP {(int)status}: {FirstLine(e.Message)}",
        HttpRequestException e => $"The model provider could not be reached: {FirstLine(e.Message)}",
        TimeoutException e => $"The model timed out: {e.Message}",
        JsonException or FormatException or InvalidDataException => $"The model provider sent a malformed response: {FirstLine(exception.Message)}",
        _ => FirstLine(exception.Message),
    };

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();

    /// <summary>What a run has produced so far, carried across group-commit batches.</summary>
    internal sealed class RunProgress
    {
        /// <summary>Id of the outbound message whose deltas are streaming, or null.</summary>
        public Guid? PendingMessageId { get; set; }

        /// <summary>
        /// The sequence of the first <c>message.delta</c> of <see cref="PendingMessageId"/> (0 when none is streaming):
        /// where <see cref="ReadPendingTextAsync"/> starts reading the reply's text back when the run ends without its message.
        /// </summary>
        public long PendingFromSequence { get; set; }

        /// <summary>Tokens used so far, or null when no model was called.</summary>
        public Models.TokenUsage? Usage { get; set; }

        /// <summary>When the run started (<see cref="TimeProvider.GetTimestamp"/>).</summary>
        public long StartedAt { get; init; }

        /// <summary>True once a delta or message was applied.</summary>
        public bool HasOutput { get; set; }

        /// <summary>Why the agent ended the conversation, or null; the thread closes when the run ends.</summary>
        public string? CloseReason { get; set; }

        /// <summary>True once time-to-first-output was recorded.</summary>
        public bool FirstOutputRecorded { get; set; }

        /// <summary>Set by the cancel watcher: <c>interrupt</c> or <c>rollback</c> when a cancel request stopped the run.</summary>
        public volatile string? CancelAction;
    }

    /// <summary>A text delta's <c>message.delta</c> data, serialized before the write (<see cref="PrepareDeltas"/>).</summary>
    internal readonly record struct PreparedDelta(Guid MessageId, string DataJson);

    /// <summary>
    /// Adds to <paramref name="deltas"/>, for each update of <paramref name="batch"/> in order, the serialized
    /// <c>message.delta</c> data of a text delta (null for any other update), with the message id it belongs to: the
    /// streaming message's (<paramref name="pendingMessageId"/>), or a new one (UUIDv7 of <paramref name="now"/>) for the
    /// first delta after a finished message. This runs on the run's own thread: inside the write it ran on the store's
    /// single writer thread, which every write of the process waits for (the JSON of each delta was ≈ 1/6 of that
    /// thread's time at 1,000 paced runs, docs/benchmarks.md).
    /// </summary>
    internal static void PrepareDeltas(List<AgentUpdate> batch, Guid? pendingMessageId, DateTimeOffset now, List<PreparedDelta?> deltas)
    {
        foreach (var update in batch)
        {
            PreparedDelta? delta = null;
            if (update is TextDeltaUpdate d)
            {
                pendingMessageId ??= Guid.CreateVersion7(now);
                delta = new(pendingMessageId.Value, JsonSerializer.Serialize(new MessageDeltaData(pendingMessageId.Value, d.Delta), CoreJsonContext.Payloads.MessageDeltaData));
            }
            else if (update is OutboundMessageUpdate) pendingMessageId = null; // as Apply does: the next delta starts a new message
            deltas.Add(delta);
        }
    }

    /// <summary>Turns one executor update into changes of the thread; a text delta comes with its data serialized (<paramref name="delta"/>, from <see cref="PrepareDeltas"/>).</summary>
    /// <exception cref="ArgumentException">A text delta without <paramref name="delta"/>.</exception>
    internal static void Apply(ThreadChange change, Run run, AgentUpdate update, RunProgress progress, PreparedDelta? delta)
    {
        // change.Thread is read only where it is needed: reading it after an append copies the thread record.
        switch (update)
        {
            case TextDeltaUpdate:
                var prepared = delta ?? throw new ArgumentException("A text delta is applied with its prepared data (PrepareDeltas).", nameof(delta));
                progress.HasOutput = true;
                var appended = change.AppendRaw(ThreadEventTypes.MessageDelta, run.Id, prepared.DataJson);
                if (progress.PendingMessageId != prepared.MessageId) progress.PendingFromSequence = appended.Sequence;
                progress.PendingMessageId = prepared.MessageId;
                break;
            case OutboundMessageUpdate m:
                progress.HasOutput = true;
                if (m.Usage is { } usage) progress.Usage = (progress.Usage ?? Models.TokenUsage.Zero) + usage;
                change.AddMessage(new ThreadMessage
                {
                    Id = progress.PendingMessageId ?? Guid.CreateVersion7(change.Now),
                    ThreadId = change.Original.Id,
                    OrganizationId = change.Original.OrganizationId,
                    Direction = MessageDirection.OUTBOUND,
                    MessageBody = m.Text,
                    Status = MessageStatus.SENT,
                    RunId = run.Id,
                    QuickReplies = m.QuickReplies,
                    Usage = m.Usage,
                    CreatedAt = change.Now,
                });
                progress.PendingMessageId = null;
                progress.PendingFromSequence = 0;
                break;
            case VariablesUpdate v:
                var variables = new Dictionary<string, string>(change.Thread.Variables);
                foreach (var (name, value) in v.Values) variables[name] = value;
                change.UpdateState(variables: variables, runId: run.Id);
                break;
            case FlowStateUpdate f:
                change.UpdateState(state: change.Thread.State with { Flow = f.State }, runId: run.Id);
                break;
            case HandOffUpdate h:
                change.UpdateState(state: change.Thread.State with { Control = ChatThreadState.HumanControl, HandOffReason = h.Reason }, runId: run.Id);
                break;
            case CloseThreadUpdate c:
                progress.CloseReason ??= c.Reason; // applied with the run's end
                break;
            case ToolCallUpdate call:
                change.Append(ThreadEventTypes.ToolCall, run.Id, new ToolCallData(call.CallId, call.Name, ParseJson(call.ArgumentsJson)), CoreJsonContext.Payloads.ToolCallData);
                break;
            case ToolResultUpdate result:
                change.Append(ThreadEventTypes.ToolResult, run.Id, new ToolResultData(result.CallId, result.Name, ParseJson(result.ResultJson), result.IsError), CoreJsonContext.Payloads.ToolResultData);
                break;
            default:
                throw new InvalidOperationException($"Unknown agent update {update.GetType().Name}.");
        }
    }

    private static JsonElement ParseJson(string json)
    {
        try { return JsonDocument.Parse(json).RootElement.Clone(); }
        catch (JsonException) { return JsonSerializer.SerializeToElement(json, CoreJsonContext.Payloads.String); }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Run {RunId} started on thread {ThreadId}")]
        public static partial void RunStarted(ILogger logger, Guid runId, Guid threadId);

        [LoggerMessage(2, LogLevel.Debug, "Run {RunId} completed")]
        public static partial void RunCompleted(ILogger logger, Guid runId);

        [LoggerMessage(3, LogLevel.Warning, "Run {RunId} failed")]
        public static partial void RunFailed(ILogger logger, Exception exception, Guid runId);

        [LoggerMessage(4, LogLevel.Error, "The run queue of thread {ThreadId} failed")]
        public static partial void DrainFailed(ILogger logger, Exception exception, Guid threadId);

        [LoggerMessage(5, LogLevel.Debug, "Run {RunId} was cancelled ({Action})")]
        public static partial void RunCancelled(ILogger logger, Guid runId, string action);

        [LoggerMessage(6, LogLevel.Warning, "Watching run {RunId} for cancel requests failed")]
        public static partial void CancelWatchFailed(ILogger logger, Exception exception, Guid runId);

        [LoggerMessage(7, LogLevel.Warning, "Run {RunId} was abandoned by a node whose lease expired; ending it as an error")]
        public static partial void RunAbandoned(ILogger logger, Guid runId);

        [LoggerMessage(8, LogLevel.Warning, "Run {RunId} lost its lease to another node; this node stopped it")]
        public static partial void LeaseLost(ILogger logger, Guid runId);

        [LoggerMessage(9, LogLevel.Warning, "Renewing the lease of run {RunId} failed")]
        public static partial void RenewFailed(ILogger logger, Exception exception, Guid runId);

        [LoggerMessage(10, LogLevel.Warning, "Looking for runs nobody executes failed")]
        public static partial void PollFailed(ILogger logger, Exception exception);

        [LoggerMessage(11, LogLevel.Warning, "Reading back the text run {RunId} streamed before it ended failed; its reply is stored without it")]
        public static partial void PendingTextUnreadable(ILogger logger, Exception exception, Guid runId);
    }
}
