using Microsoft.Extensions.Diagnostics.HealthChecks;
using Parley.Backplane.Redis;
using Parley.Storage.Postgres;

namespace Parley.Server.Hosting;

/// <summary><c>/healthz</c> part for the PostgreSQL store: unhealthy when the database does not answer <c>SELECT 1</c>.</summary>
public sealed class PostgresHealthCheck(PostgresStore store) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.PingAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, "PostgreSQL does not answer.");
        }
    }
}

/// <summary>
/// <c>/healthz</c> part for the Redis backplane: degraded (HTTP 200) while disconnected, because the node still serves
/// every call correctly (streams fall back to the store on heartbeats), only with more latency.
/// </summary>
public sealed class RedisHealthCheck(RedisThreadEventBus bus) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(bus.IsConnected ? HealthCheckResult.Healthy() : HealthCheckResult.Degraded("Redis is unreachable; streams fall back to the database."));
}
