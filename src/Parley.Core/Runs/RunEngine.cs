using System.Collections.Concurrent;
using System.Text.Json;
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
}

/// <summary>
/// Executes queued runs: one at a time per thread, in the order they were queued, many threads in parallel. Each
/// update an executor yields becomes one atomic thread write. A run never depends on a client being connected.
/// At start it fails runs left <c>running</c> by a previous process and resumes the pending ones.
/// </summary>
public sealed partial class RunEngine(
    IThreadStore threads,
    IAgentStore agents,
    IEnumerable<IAgentExecutor> executors,
    IOptions<RunEngineOptions> options,
    ILogger<RunEngine> logger) : BackgroundService
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
                _drainers[threadId] = Task.Run(() => DrainAsync(threadId));
                return;
            }
            if (_scheduled.TryGetValue(threadId, out var seen) && _scheduled.TryUpdate(threadId, seen + 1, seen)) return;
        }
    }

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
        foreach (var run in await threads.ListUnfinishedRunsAsync(stoppingToken))
        {
            if (run.Status == RunStatus.running)
                await FailAsync(run, "The server stopped while the run was executing.", CancellationToken.None);
            Schedule(run.ThreadId);
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try { await WhenIdleAsync(cancellationToken); } catch (OperationCanceledException) { }
    }

    private async Task DrainAsync(Guid threadId)
    {
        try
        {
            while (true)
            {
                _scheduled.TryGetValue(threadId, out var seen);
                while (!_stopping.IsCancellationRequested && await threads.GetNextPendingRunAsync(threadId, CancellationToken.None) is { } run)
                {
                    await _slots.WaitAsync(CancellationToken.None);
                    try { await ExecuteRunAsync(run); }
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
        finally
        {
            _drainers.TryRemove(threadId, out _);
        }
    }

    private async Task ExecuteRunAsync(Run queued)
    {
        var cancellationToken = _stopping;
        var started = await threads.UpdateThreadAsync(queued.ThreadId, change =>
        {
            var thread = change.Thread;
            if (!thread.IsActive || thread.State.Control != ChatThreadState.AgentControl)
            {
                change.SaveRun(queued with { Status = RunStatus.cancelled, EndedAt = change.Now }, ThreadEventTypes.RunCancelled);
                return ((ChatThread Thread, Run Run)?)null;
            }
            var run = change.SaveRun(queued with { Status = RunStatus.running, StartedAt = change.Now }, ThreadEventTypes.RunStarted);
            return (change.Thread, run);
        }, CancellationToken.None);
        if (started is not { } s) return;
        var run = s.Run;

        Log.RunStarted(logger, run.Id, run.ThreadId);
        try
        {
            var version = await agents.GetAgentVersionAsync(run.AgentVersionId, cancellationToken)
                ?? throw new InvalidOperationException($"Agent version {run.AgentVersionId} does not exist.");
            if (!_executors.TryGetValue(version.Definition.Mode, out var executor))
                throw new InvalidOperationException($"No executor for {version.Definition.Mode} agents is configured.");
            var input = run.InputMessageId is { } inputId ? (await threads.GetMessageAsync(inputId, cancellationToken))?.MessageBody ?? "" : "";
            var context = new RunContext(s.Thread, version, run, input);

            await foreach (var update in executor.ExecuteAsync(context, cancellationToken))
                await threads.UpdateThreadAsync(run.ThreadId, change => Apply(change, run, update), CancellationToken.None);

            await threads.UpdateThreadAsync(run.ThreadId, change =>
                change.SaveRun(run with { Status = RunStatus.success, EndedAt = change.Now }, ThreadEventTypes.RunCompleted), CancellationToken.None);
            Log.RunCompleted(logger, run.Id);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await FailAsync(run, "The server stopped while the run was executing.", CancellationToken.None);
        }
        catch (Exception ex)
        {
            Log.RunFailed(logger, ex, run.Id);
            await FailAsync(run, ex.Message, CancellationToken.None);
        }
    }

    private Task FailAsync(Run run, string error, CancellationToken cancellationToken) =>
        threads.UpdateThreadAsync(run.ThreadId, change =>
            change.SaveRun(run with { Status = RunStatus.error, EndedAt = change.Now, Error = error }, ThreadEventTypes.RunFailed), cancellationToken);

    /// <summary>Turns one executor update into changes of the thread.</summary>
    internal static bool Apply(ThreadChange change, Run run, AgentUpdate update)
    {
        var thread = change.Thread;
        switch (update)
        {
            case OutboundMessageUpdate m:
                change.AddMessage(new ThreadMessage
                {
                    Id = Guid.CreateVersion7(change.Now),
                    ThreadId = thread.Id,
                    OrganizationId = thread.OrganizationId,
                    Direction = MessageDirection.OUTBOUND,
                    MessageBody = m.Text,
                    Status = MessageStatus.SENT,
                    RunId = run.Id,
                    QuickReplies = m.QuickReplies,
                    CreatedAt = change.Now,
                });
                break;
            case VariablesUpdate v:
                var variables = new Dictionary<string, string>(thread.Variables);
                foreach (var (name, value) in v.Values) variables[name] = value;
                change.UpdateState(variables: variables, runId: run.Id);
                break;
            case FlowStateUpdate f:
                change.UpdateState(state: thread.State with { Flow = f.State }, runId: run.Id);
                break;
            case HandOffUpdate h:
                change.UpdateState(state: thread.State with { Control = ChatThreadState.HumanControl, HandOffReason = h.Reason }, runId: run.Id);
                break;
            case CloseThreadUpdate c:
                change.Close(c.Reason, run.Id);
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
        return true;
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
    }
}
