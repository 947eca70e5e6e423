using Microsoft.Extensions.Options;
using Npgsql;
using Parley.Core.Runs;

namespace Parley.Storage.Postgres;

/// <summary>
/// Run leases in PostgreSQL: a node claims a thread's next run by writing its node id and an expiry into the run's
/// row, renews the expiry while the run works, and a run whose lease expired is free for any node. A claim locks the
/// thread's row first (<c>FOR UPDATE</c>, the same lock every thread write takes), so two nodes claiming runs of one
/// thread are serialized and the second sees the first's lease: one run per thread executes at a time in the whole
/// cluster. Lease times come from the database clock (<c>now()</c>), so node clocks need not agree.
/// </summary>
public sealed class PostgresRunLeases(PostgresStore store, IOptions<PostgresStoreOptions> options) : IRunLeases
{
    private readonly string _node = options.Value.NodeId;
    private readonly double _leaseSeconds = options.Value.LeaseSeconds;

    /// <inheritdoc />
    public bool IsShared => true;

    /// <inheritdoc />
    public TimeSpan RenewInterval => TimeSpan.FromSeconds(_leaseSeconds / 3);

    /// <inheritdoc />
    public TimeSpan PollInterval => TimeSpan.FromSeconds(options.Value.PollSeconds);

    /// <summary>This node's id in leases.</summary>
    public string NodeId => _node;

    /// <inheritdoc />
    public async Task<RunClaim> ClaimNextAsync(Guid threadId, CancellationToken cancellationToken = default)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using (var lockThread = new NpgsqlCommand("SELECT 1 FROM threads WHERE id = @thread FOR UPDATE", connection, tx))
        {
            lockThread.Parameters.AddWithValue("thread", threadId);
            if (await lockThread.ExecuteScalarAsync(cancellationToken) is null) return default;
        }
        // Read after the lock: in READ COMMITTED this statement sees every claim committed before the lock was granted.
        var unfinished = new List<(Run Run, bool LeaseLive)>();
        await using (var query = new NpgsqlCommand($"""
            SELECT {PostgresStore.RunColumns},
                   COALESCE(lease_expires_at > now() AND NOT (status = 'pending' AND lease_owner = @node), false) FROM runs
            WHERE thread_id = @thread AND status IN ('pending', 'running') ORDER BY queue_position
            """, connection, tx))
        {
            query.Parameters.AddWithValue("thread", threadId);
            query.Parameters.AddWithValue("node", _node);
            await using var r = await query.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken)) unfinished.Add((PostgresStore.MapRun(r), r.GetBoolean(12)));
        }
        // Some node is on this thread (it drains the rest). This node's own claim on a pending run does not count: the
        // engine claims again when the thread changed between its claim and the run's start (a cancel, a new message).
        if (unfinished.Any(u => u.LeaseLive)) return default;

        // A run left running under an expired lease comes first: its node died. A pending run whose claim expired
        // never started (its node died between claim and start) and is simply claimed again.
        var abandoned = unfinished.FirstOrDefault(u => u.Run.Status == RunStatus.running).Run;
        var next = abandoned ?? unfinished.FirstOrDefault(u => u.Run.Status == RunStatus.pending).Run;
        if (next is null) return default;
        await using (var claim = new NpgsqlCommand(
            "UPDATE runs SET lease_owner = @node, lease_expires_at = now() + make_interval(secs => @seconds) WHERE id = @id", connection, tx))
        {
            claim.Parameters.AddWithValue("node", _node);
            claim.Parameters.AddWithValue("seconds", _leaseSeconds);
            claim.Parameters.AddWithValue("id", next.Id);
            await claim.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(CancellationToken.None);
        return abandoned is not null ? new RunClaim(null, abandoned) : new RunClaim(next, null);
    }

    /// <inheritdoc />
    public async Task<bool> RenewAsync(Guid runId, CancellationToken cancellationToken = default)
    {
        await using var renew = store.DataSource.CreateCommand("""
            UPDATE runs SET lease_expires_at = now() + make_interval(secs => @seconds)
            WHERE id = @id AND lease_owner = @node AND status IN ('pending', 'running')
            """);
        renew.Parameters.AddWithValue("seconds", _leaseSeconds);
        renew.Parameters.AddWithValue("id", runId);
        renew.Parameters.AddWithValue("node", _node);
        return await renew.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<Guid>> ListThreadsNeedingWorkAsync(int limit, CancellationToken cancellationToken = default)
    {
        // Unclaimed pending runs show up here for a moment after every post (the posting node claims them at once);
        // scheduling such a thread on another node as well is harmless: the claim decides.
        await using var query = store.DataSource.CreateCommand("""
            SELECT DISTINCT thread_id FROM runs
            WHERE status IN ('pending', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now())
            LIMIT @limit
            """);
        query.Parameters.AddWithValue("limit", limit);
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var threads = new List<Guid>();
        while (await r.ReadAsync(cancellationToken)) threads.Add(r.GetGuid(0));
        return threads;
    }
}
