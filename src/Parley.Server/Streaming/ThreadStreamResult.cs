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
        var burst = new Burst(this, source.GetAsyncEnumerator(cancellationToken), metrics.EventsDelivered);
        try
        {
            await burst.WriteAsync(buffered, SseResponse.Heartbeat, FormatData, endAtFlush: false, cancellationToken);
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

    /// <summary>The web chat stream's bursts (<see cref="SseEventBurst{T}"/>): each log event its mode sends, as is.</summary>
    private sealed class Burst(ThreadStreamResult result, IAsyncEnumerator<ThreadStreamItem> source, System.Diagnostics.Metrics.Counter<long> delivered)
        : SseEventBurst<ThreadEvent>(source)
    {
        private Guid? _closingRun;
        private string? _eventType;

        /// <inheritdoc />
        public override SseItem<ThreadEvent> Current
        {
            get
            {
                var e = Source.Current.Event!;
                return new SseItem<ThreadEvent>(e, _eventType) { EventId = e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            }
        }

        /// <summary>True when the mode sends <paramref name="e"/> (its event name kept for <see cref="Current"/>); ends the stream at thread.closed, or when a run closed the thread, at that run's end.</summary>
        protected override ValueTask<bool> AcceptAsync(ThreadEvent e)
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
            return new ValueTask<bool>(_eventType is not null);
        }
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
