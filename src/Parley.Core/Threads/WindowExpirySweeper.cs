using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Parley.Core.Threads;

/// <summary>Options of thread housekeeping (<c>Parley:Threads</c>).</summary>
public sealed class ThreadOptions
{
    /// <summary>How often threads whose inactivity window ran out are closed, in seconds (default 60).</summary>
    public int ExpirySweepSeconds { get; set; } = 60;
}

/// <summary>Closes threads whose inactivity window ran out (reason <c>window_expired</c>) every <see cref="ThreadOptions.ExpirySweepSeconds"/>.</summary>
public sealed partial class WindowExpirySweeper(ThreadService threads, IOptions<ThreadOptions> options, TimeProvider time, ILogger<WindowExpirySweeper> logger) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.ExpirySweepSeconds)), time);
        do
        {
            try
            {
                var closed = await threads.CloseExpiredAsync(stoppingToken);
                if (closed > 0) Log.Closed(logger, closed);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.Failed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Closed {Count} threads whose window ran out")]
        public static partial void Closed(ILogger logger, int count);

        [LoggerMessage(2, LogLevel.Error, "Closing expired threads failed")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
