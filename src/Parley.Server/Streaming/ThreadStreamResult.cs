using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text;
using Microsoft.Extensions.Options;
using Parley.Core.Events;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Server.Streaming;

/// <summary>
/// Writes a thread's event log as Server-Sent Events (WHATWG HTML §9.2): <c>id:</c> is the event's sequence number,
/// so a client that reconnects with <c>Last-Event-ID</c> continues exactly after the last event it saw. Events are
/// formatted by <see cref="SseFormatter"/>; idle streams get <c>: ping</c> comments. Writes are buffered in the response pipe and flushed
/// whenever nothing more is ready, so a replay goes out in large writes and a live event goes out at once.
/// The stream ends when the thread closes (after the closing run's last event); reconnecting once nothing is left answers
/// 204 No Content, which tells an <c>EventSource</c> to stop reconnecting.
/// </summary>
public sealed class ThreadStreamResult(ChatThread thread, long afterSequence, ThreadStreamMode mode) : IResult
{
    /// <inheritdoc />
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var services = httpContext.RequestServices;
        var cancellationToken = httpContext.RequestAborted;
        var store = services.GetRequiredService<IThreadStore>();

        IAsyncEnumerable<ThreadStreamItem> source;
        if (!thread.IsActive)
        {
            var remaining = await ReadRemainingAsync(store, cancellationToken);
            if (remaining.Count == 0)
            {
                httpContext.Response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }
            source = remaining.Select(e => new ThreadStreamItem(ThreadStreamItemKind.Event, e)).ToAsyncEnumerable();
        }
        else
        {
            var heartbeat = TimeSpan.FromSeconds(services.GetRequiredService<IOptions<StreamingOptions>>().Value.HeartbeatSeconds);
            source = services.GetRequiredService<ThreadEventReader>().ReadAsync(thread.Id, afterSequence, heartbeat, endWhenStopping: true, cancellationToken);
        }

        var metrics = services.GetRequiredService<Parley.Core.Diagnostics.ParleyMetrics>();
        await SseResponse.StartAsync(httpContext.Response, cancellationToken);
        metrics.OpenStreams.Add(1);
        using var closed = new OpenStreamScope(metrics);
        // Events are copied into the response pipe and sent at each flush (whenever nothing more is ready).
        var buffered = new ResponseBufferStream(httpContext.Response.BodyWriter);
        var events = source.GetAsyncEnumerator(cancellationToken);
        var burst = new Burst(this, events, metrics.EventsDelivered);
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
                            await buffered.WriteAsync(SseResponse.Heartbeat, cancellationToken);
                            await buffered.FlushAsync(cancellationToken);
                            break;
                        case ThreadStreamItemKind.Flush:
                            await buffered.FlushAsync(cancellationToken);
                            break;
                        case ThreadStreamItemKind.Event when burst.Starts(events.Current.Event!):
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
            // The client went away or the server is stopping: nothing to finish.
        }
        catch (IOException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>The SSE event name for <paramref name="e"/> in this stream's mode, or null when the mode skips it.</summary>
    private string? Project(ThreadEvent e) => mode switch
    {
        ThreadStreamMode.All => e.Type,
        _ when e.Type == ThreadEventTypes.MessageCreated && e.Data.Contains("\"direction\":\"OUTBOUND\"", StringComparison.Ordinal) => "message",
        _ => null,
    };

    private static void FormatData(SseItem<ThreadEvent> item, IBufferWriter<byte> writer) => Encoding.UTF8.GetBytes(item.Data.Data, writer);

    /// <summary>
    /// Hands <see cref="SseFormatter"/> one burst of a stream's events at a time: the events this stream's mode sends,
    /// read from the log up to the next item that is not an event (a flush or a heartbeat), which stays the log
    /// enumerator's current item for the caller (<see cref="TakeStop"/>). One small object per stream instead of an
    /// iterator that the formatter awaits, with its buffers, for the life of the stream.
    /// </summary>
    private sealed class Burst(ThreadStreamResult result, IAsyncEnumerator<ThreadStreamItem> source, System.Diagnostics.Metrics.Counter<long> delivered)
        : IAsyncEnumerable<SseItem<ThreadEvent>>, IAsyncEnumerator<SseItem<ThreadEvent>>
    {
        private Guid? _closingRun;
        private string? _eventType;
        private bool _first;
        private bool _stopped;

        /// <summary>True once the stream must end: at thread.closed, or when a run closed the thread, at that run's end.</summary>
        public bool Ended { get; private set; }

        /// <inheritdoc />
        public SseItem<ThreadEvent> Current
        {
            get
            {
                var e = source.Current.Event!;
                return new SseItem<ThreadEvent>(e, _eventType) { EventId = e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            }
        }

        /// <summary>True (once) when the last burst stopped at an item that is not an event: the log's current item.</summary>
        public bool TakeStop()
        {
            if (!_stopped) return false;
            _stopped = false;
            return true;
        }

        /// <summary>True when this stream sends <paramref name="e"/> (the log's current item): the first event of a burst.</summary>
        public bool Starts(ThreadEvent e) => _first = Accept(e);

        /// <inheritdoc />
        public IAsyncEnumerator<SseItem<ThreadEvent>> GetAsyncEnumerator(CancellationToken cancellationToken = default) => this;

        /// <inheritdoc />
        public ValueTask<bool> MoveNextAsync()
        {
            if (_first)
            {
                _first = false;
                return new ValueTask<bool>(true);
            }
            return Ended ? new ValueTask<bool>(false) : MoveToNextEventAsync();
        }

        private async ValueTask<bool> MoveToNextEventAsync()
        {
            while (await source.MoveNextAsync())
            {
                var item = source.Current;
                if (item.Kind != ThreadStreamItemKind.Event)
                {
                    _stopped = true;
                    return false;
                }
                if (Accept(item.Event!)) return true;
                if (Ended) return false;
            }
            Ended = true;
            return false;
        }

        /// <summary>True when the mode sends <paramref name="e"/> (its event name kept for <see cref="Current"/>); notes the end of the stream.</summary>
        private bool Accept(ThreadEvent e)
        {
            _eventType = result.Project(e);
            if (_eventType is not null) delivered.Add(1);
            if (e.Type == ThreadEventTypes.ThreadClosed)
            {
                if (e.RunId is null) Ended = true;
                else _closingRun = e.RunId;
            }
            else if (_closingRun is { } run && e.RunId == run &&
                     e.Type is ThreadEventTypes.RunCompleted or ThreadEventTypes.RunFailed or ThreadEventTypes.RunCancelled
                         or ThreadEventTypes.RunInterrupted or ThreadEventTypes.RunRolledBack)
            {
                Ended = true;
            }
            return _eventType is not null;
        }

        /// <summary>Ends a burst (the formatter disposes its enumerator after each one); the log enumerator stays open.</summary>
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private async Task<List<ThreadEvent>> ReadRemainingAsync(IThreadStore store, CancellationToken cancellationToken)
    {
        var projected = new List<ThreadEvent>();
        var after = afterSequence;
        while (true)
        {
            var page = await store.ReadEventsAsync(thread.Id, after, ThreadEventReader.ReplayPageSize, cancellationToken);
            projected.AddRange(page.Where(e => Project(e) is not null));
            if (page.Count < ThreadEventReader.ReplayPageSize) return projected;
            after = page[^1].Sequence;
        }
    }
}

/// <summary>Counts a stream as closed when the response ends, however it ends.</summary>
internal readonly struct OpenStreamScope(Parley.Core.Diagnostics.ParleyMetrics metrics) : IDisposable
{
    public void Dispose() => metrics.OpenStreams.Add(-1);
}
