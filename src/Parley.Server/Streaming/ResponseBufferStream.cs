using System.Buffers;
using System.IO.Pipelines;

namespace Parley.Server.Streaming;

/// <summary>
/// A write-only stream over the response's <see cref="PipeWriter"/> that copies writes into the pipe and sends them
/// only on <see cref="FlushAsync(CancellationToken)"/>: many SSE events go out in one write, and an idle stream holds
/// no buffer of its own (Kestrel's pooled segments go back to the pool once a flush is sent). The first flush always
/// goes out: it carries the response headers. It replaces a
/// <see cref="BufferedStream"/>, which kept its 4 KiB buffer for the life of every stream.
/// </summary>
internal sealed class ResponseBufferStream(PipeWriter writer) : Stream
{
    /// <summary>Unsent bytes after which a write sends them (a replay goes out in pieces of this size, with backpressure).</summary>
    public const int FlushThreshold = 16 * 1024;

    private long _unflushed;

    // Response.StartAsync writes the response's status line and headers into the pipe without sending them: the first
    // flush sends them even when no event was written, so a client that opens a stream with nothing to send yet sees
    // the response at once (an EventSource's open event) instead of at the first heartbeat.
    private bool _headersSent;

    /// <inheritdoc />
    public override bool CanRead => false;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        writer.Write(buffer);
        _unflushed += buffer.Length;
    }

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return _unflushed >= FlushThreshold ? new ValueTask(FlushAsync(cancellationToken)) : ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_unflushed == 0 && _headersSent) return;
        _unflushed = 0;
        _headersSent = true;
        var result = await writer.FlushAsync(cancellationToken);
        if (result.IsCanceled) throw new OperationCanceledException(cancellationToken);
    }

    /// <inheritdoc />
    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();
}
