using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text;
using Microsoft.Extensions.Options;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Storage;
using Parley.Server.Streaming;

namespace Parley.Server.AgentServer;

/// <summary>Where an agent-server stream starts and what it carries.</summary>
/// <param name="ThreadId">The thread.</param>
/// <param name="ReadAfter">The log is read after this sequence (the values are loaded up to it).</param>
/// <param name="Skip">Events at or before this position were seen by the client (from <c>Last-Event-ID</c>), or null.</param>
/// <param name="Kinds">The projected kinds the stream carries.</param>
/// <param name="RunId">For a run stream, the run (only its events are sent; the stream ends with the run); null for the thread stream.</param>
/// <param name="RunFinished">For a run stream, true when the run had ended before the request: the stream ends after the replay.</param>
public sealed record AgentServerStreamPlan(Guid ThreadId, long ReadAfter, StreamPosition? Skip, IReadOnlySet<ProjectedKind> Kinds, Guid? RunId, bool RunFinished);

/// <summary>
/// Writes a run stream or the thread stream of the agent-server dialect as Server-Sent Events formatted by
/// <see cref="SseFormatter"/>: a projection of the thread's log (<see cref="AgentServerProjector"/>) read by the
/// gap-free <see cref="ThreadEventReader"/>, with ids that resume exactly (<see cref="StreamPosition"/>) and
/// <c>: ping</c> comment lines on idle streams.
/// </summary>
public sealed class AgentServerStreamResult(AgentServerStreamPlan plan, IReadOnlyDictionary<string, string> headers) : IResult
{
    /// <inheritdoc />
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var services = httpContext.RequestServices;
        var cancellationToken = httpContext.RequestAborted;
        var projector = new AgentServerProjector(services.GetRequiredService<IThreadStore>(), services.GetRequiredService<IAgentStore>(), plan.ThreadId);
        await projector.InitializeAsync(plan.ReadAfter, cancellationToken);
        var heartbeat = TimeSpan.FromSeconds(services.GetRequiredService<IOptions<StreamingOptions>>().Value.HeartbeatSeconds);
        var source = services.GetRequiredService<ThreadEventReader>().ReadAsync(plan.ThreadId, plan.ReadAfter, heartbeat, endWhenStopping: true, cancellationToken);

        foreach (var (name, value) in headers) httpContext.Response.Headers[name] = value;
        var metrics = services.GetRequiredService<Parley.Core.Diagnostics.ParleyMetrics>();
        await SseResponse.StartAsync(httpContext.Response, cancellationToken);
        metrics.OpenStreams.Add(1);
        using var closed = new OpenStreamScope(metrics);
        // Events are copied into the response pipe and sent at each flush; an idle stream holds no buffer of its own.
        var buffered = new ResponseBufferStream(httpContext.Response.BodyWriter);
        var events = source.GetAsyncEnumerator(cancellationToken);
        var burst = new Burst(plan, projector, events, metrics.EventsDelivered, cancellationToken);
        try
        {
            try
            {
                // A burst stops at the item after its last event without moving on: that item is handled next.
                while (!burst.Ended && (burst.TakeStop() || await events.MoveNextAsync()))
                {
                    switch (events.Current.Kind)
                    {
                        case ThreadStreamItemKind.Heartbeat:
                            await buffered.WriteAsync(Heartbeat, cancellationToken);
                            await buffered.FlushAsync(cancellationToken);
                            break;
                        case ThreadStreamItemKind.Flush:
                            await buffered.FlushAsync(cancellationToken);
                            if (plan.RunFinished) return; // everything of an ended run was in the store, and is sent
                            break;
                        case ThreadStreamItemKind.Event when await burst.StartsAsync(events.Current.Event!):
                            // The formatter runs only for a burst of events and lets go of its state after it, so an
                            // idle stream holds none of it (docs/benchmarks.md, idle-streams).
                            await SseFormatter.WriteAsync(burst, buffered, FormatData, cancellationToken);
                            break;
                    }
                }
            }
            finally
            {
                await events.DisposeAsync();
            }
            await buffered.FlushAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away or the server is stopping: it resumes with Last-Event-ID.
        }
        catch (IOException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Hands <see cref="SseFormatter"/> one burst of a stream's events at a time: the projected events of the log's
    /// events (<see cref="AgentServerProjector"/>, each log event projected once, in order) that this stream sends, up to
    /// the next item that is not an event (a flush or a heartbeat), which stays the log enumerator's current item for
    /// the caller (<see cref="TakeStop"/>). One small object per stream instead of an iterator that the formatter awaits,
    /// with its state, for the life of the stream (as the web chat stream's <c>ThreadStreamResult</c>).
    /// </summary>
    private sealed class Burst(
        AgentServerStreamPlan plan, AgentServerProjector projector, IAsyncEnumerator<ThreadStreamItem> source,
        System.Diagnostics.Metrics.Counter<long> delivered, CancellationToken cancellationToken)
        : IAsyncEnumerable<SseItem<string>>, IAsyncEnumerator<SseItem<string>>
    {
        private ThreadEvent? _event; // the log event whose projection is being sent
        private IReadOnlyList<ProjectedEvent> _projected = [];
        private int _index; // of the current projected event in _projected
        private bool _first;
        private bool _stopped;

        /// <summary>True once the stream must end: after the last event of the run a run stream follows.</summary>
        public bool Ended { get; private set; }

        /// <inheritdoc />
        public SseItem<string> Current
        {
            get
            {
                var projected = _projected[_index];
                return new SseItem<string>(projected.Data, projected.Event) { EventId = new StreamPosition(_event!.Sequence, _index).ToString() };
            }
        }

        /// <summary>True (once) when the last burst stopped at an item that is not an event: the log's current item.</summary>
        public bool TakeStop()
        {
            if (!_stopped) return false;
            _stopped = false;
            return true;
        }

        /// <summary>
        /// Projects <paramref name="e"/> (the log's current item); true when the stream sends any of it: the first event
        /// of a burst is then <see cref="Current"/>.
        /// </summary>
        public async ValueTask<bool> StartsAsync(ThreadEvent e)
        {
            await BeginAsync(e);
            if (NextInScope()) return _first = true;
            EndOfEvent(); // a run stream ends at its run's end, even when it sends nothing of that event
            Release();
            return false;
        }

        /// <inheritdoc />
        public IAsyncEnumerator<SseItem<string>> GetAsyncEnumerator(CancellationToken token = default) => this;

        /// <inheritdoc />
        public ValueTask<bool> MoveNextAsync()
        {
            if (_first)
            {
                _first = false;
                return new ValueTask<bool>(true);
            }
            if (NextInScope()) return new ValueTask<bool>(true);
            return EndOfEvent() ? new ValueTask<bool>(false) : MoveToNextEventAsync();
        }

        private async ValueTask<bool> MoveToNextEventAsync()
        {
            while (await source.MoveNextAsync())
            {
                var item = source.Current;
                if (item.Kind != ThreadStreamItemKind.Event)
                {
                    _stopped = true;
                    Release();
                    return false;
                }
                await BeginAsync(item.Event!);
                if (NextInScope()) return true;
                if (EndOfEvent()) return false;
            }
            Ended = true;
            return false;
        }

        private async ValueTask BeginAsync(ThreadEvent e)
        {
            _projected = await projector.ProjectAsync(e, cancellationToken);
            _event = e;
            _index = -1;
        }

        /// <summary>Lets go of the last log event and its projection between bursts (an idle stream keeps neither).</summary>
        private void Release()
        {
            _event = null;
            _projected = [];
        }

        /// <summary>Moves to the next projected event of the current log event that this stream sends; false when none is left.</summary>
        private bool NextInScope()
        {
            var e = _event!;
            if (plan.RunId is { } runId && e.RunId != runId)
            {
                _index = _projected.Count;
                return false;
            }
            while (++_index < _projected.Count)
            {
                if (!plan.Kinds.Contains(_projected[_index].Kind)) continue;
                if (plan.Skip is { } skip && (e.Sequence < skip.Sequence || e.Sequence == skip.Sequence && _index <= skip.Index)) continue;
                delivered.Add(1);
                return true;
            }
            return false;
        }

        /// <summary>At the end of the current log event's projection: true (and <see cref="Ended"/>) when it ended the run a run stream follows.</summary>
        private bool EndOfEvent()
        {
            if (plan.RunId is { } run && _event!.RunId == run && AgentServerProjector.RunEndTypes.Contains(_event.Type)) Ended = true;
            return Ended;
        }

        /// <summary>Ends a burst (the formatter disposes its enumerator after each one); the log enumerator stays open.</summary>
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// The keep-alive comment, without the blank line the other dialects put after it. A comment line alone is ignored
    /// by every SSE parser (WHATWG HTML §9.2.6); a blank line after it would make @langchain/langgraph-sdk 2.0.0's
    /// decoder, which keeps the last id across events, hand the application an empty event (<c>event: ""</c>).
    /// </summary>
    private static readonly byte[] Heartbeat = ": ping\n"u8.ToArray();

    private static void FormatData(SseItem<string> item, IBufferWriter<byte> writer) => Encoding.UTF8.GetBytes(item.Data, writer);
}
