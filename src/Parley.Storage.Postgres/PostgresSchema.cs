using Npgsql;

namespace Parley.Storage.Postgres;

/// <summary>
/// The PostgreSQL schema as numbered migrations, applied in order at start, one transaction each, recorded in
/// <c>schema_migrations</c>. Several nodes may start at once: the migrator holds a session advisory lock
/// (<see cref="MigrationLockKey"/>) while it reads the version and applies what is missing, so exactly one node
/// migrates and the others wait, then find nothing to do. Never edit a shipped migration: add the next one.
/// </summary>
internal static class PostgresSchema
{
    /// <summary>The advisory lock key held while migrating (any constant unlikely to clash with an application's own).</summary>
    public const long MigrationLockKey = 0x5061726c6579; // "Parley"

    // Mirrors SqliteSchema's versions 1-3 in one step (PostgreSQL support started with that schema), plus the run
    // lease columns that only a shared database needs. Times are timestamptz (microseconds), JSON payloads text so
    // an event's data is returned exactly as it was appended.
    private static readonly (int Version, string Sql)[] Migrations =
    [
        (1, """
            CREATE TABLE organizations (
                id uuid PRIMARY KEY,
                name text NOT NULL,
                created_at timestamptz NOT NULL,
                token_budget bigint);
            CREATE TABLE api_keys (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL REFERENCES organizations(id),
                name text NOT NULL,
                key_hash text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL,
                revoked_at timestamptz,
                agent_id uuid,
                requests_per_minute integer);
            CREATE TABLE agents (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL REFERENCES organizations(id),
                name text NOT NULL,
                description text,
                agent_type text NOT NULL,
                current_version_id uuid NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL);
            CREATE INDEX agents_organization ON agents(organization_id, name);
            CREATE TABLE agent_versions (
                id uuid PRIMARY KEY,
                agent_id uuid NOT NULL REFERENCES agents(id),
                version integer NOT NULL,
                definition text NOT NULL,
                content_hash text NOT NULL,
                created_at timestamptz NOT NULL,
                UNIQUE (agent_id, version));
            CREATE TABLE threads (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL REFERENCES organizations(id),
                agent_id uuid NOT NULL REFERENCES agents(id),
                agent_version_id uuid NOT NULL REFERENCES agent_versions(id),
                channel text NOT NULL,
                metadata text NOT NULL,
                variables text NOT NULL,
                state text NOT NULL,
                is_active boolean NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                closed_at timestamptz,
                closed_reason text,
                window_expires_at timestamptz NOT NULL,
                last_sequence bigint NOT NULL);
            CREATE INDEX threads_open_by_expiry ON threads(window_expires_at) WHERE is_active;
            CREATE TABLE messages (
                id uuid PRIMARY KEY,
                thread_id uuid NOT NULL REFERENCES threads(id),
                direction text NOT NULL,
                body text NOT NULL,
                status text NOT NULL,
                run_id uuid,
                quick_replies text,
                sequence bigint NOT NULL,
                created_at timestamptz NOT NULL,
                input_tokens bigint,
                output_tokens bigint);
            CREATE UNIQUE INDEX messages_by_thread ON messages(thread_id, sequence);
            CREATE TABLE runs (
                id uuid PRIMARY KEY,
                queue_position bigint GENERATED ALWAYS AS IDENTITY,
                thread_id uuid NOT NULL REFERENCES threads(id),
                organization_id uuid NOT NULL,
                agent_version_id uuid NOT NULL,
                input_message_id uuid,
                status text NOT NULL,
                created_at timestamptz NOT NULL,
                started_at timestamptz,
                ended_at timestamptz,
                error text,
                input_tokens bigint,
                output_tokens bigint,
                lease_owner text,
                lease_expires_at timestamptz);
            CREATE INDEX runs_unfinished ON runs(thread_id, queue_position) WHERE status IN ('pending', 'running');
            CREATE INDEX runs_by_organization ON runs(organization_id, created_at);
            CREATE TABLE thread_events (
                thread_id uuid NOT NULL,
                sequence bigint NOT NULL,
                type text NOT NULL,
                run_id uuid,
                created_at timestamptz NOT NULL,
                data text NOT NULL,
                PRIMARY KEY (thread_id, sequence));
            """),
        // SqliteSchema's version 4 (the agent-server dialect): a thread may have no agent until its first run, threads
        // are listed per organization newest first and runs per thread newest first (in queue order, as SQLite's rowid).
        (2, """
            ALTER TABLE threads ALTER COLUMN agent_id DROP NOT NULL, ALTER COLUMN agent_version_id DROP NOT NULL;
            CREATE INDEX threads_by_organization ON threads(organization_id, created_at);
            CREATE INDEX runs_by_thread ON runs(thread_id, queue_position);
            """),
        // SqliteSchema's version 5: publishable keys of the browser widget (docs/widget.md), bound to one agent and a
        // list of allowed origins.
        (3, """
            CREATE TABLE publishable_keys (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL REFERENCES organizations(id),
                agent_id uuid NOT NULL REFERENCES agents(id),
                name text NOT NULL,
                key text NOT NULL UNIQUE,
                allowed_origins text[] NOT NULL,
                token_secret text NOT NULL,
                created_at timestamptz NOT NULL,
                revoked_at timestamptz);
            CREATE INDEX publishable_keys_by_organization ON publishable_keys(organization_id, created_at);
            """),
        // A running total of each organization's tokens, kept by a trigger in the transaction that writes a run's usage
        // (inserted, updated, or deleted with a rollback or its thread), so the budget check before every message reads
        // one row instead of summing all of the organization's runs. Concurrent runs of one organization serialize on its
        // row only for the update, taken after the thread's row (always in that order: no deadlock).
        (4, """
            ALTER TABLE organizations ADD COLUMN tokens_used bigint NOT NULL DEFAULT 0;
            UPDATE organizations o SET tokens_used = COALESCE((SELECT SUM(r.input_tokens::bigint + COALESCE(r.output_tokens, 0)) FROM runs r
                WHERE r.organization_id = o.id AND r.input_tokens IS NOT NULL), 0);
            CREATE FUNCTION parley_runs_usage() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                delta bigint := 0;
                organization uuid;
            BEGIN
                IF TG_OP <> 'INSERT' THEN
                    organization := OLD.organization_id;
                    IF OLD.input_tokens IS NOT NULL THEN delta := delta - OLD.input_tokens - COALESCE(OLD.output_tokens, 0); END IF;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    organization := NEW.organization_id;
                    IF NEW.input_tokens IS NOT NULL THEN delta := delta + NEW.input_tokens + COALESCE(NEW.output_tokens, 0); END IF;
                END IF;
                IF delta <> 0 THEN
                    UPDATE organizations SET tokens_used = tokens_used + delta WHERE id = organization;
                END IF;
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER runs_usage AFTER INSERT OR UPDATE OF input_tokens, output_tokens OR DELETE ON runs
                FOR EACH ROW EXECUTE FUNCTION parley_runs_usage();
            """),
    ];

    /// <summary>The newest schema version this build knows.</summary>
    public static int LatestVersion => Migrations[^1].Version;

    /// <summary>Applies the migrations the database lacks, under the migration advisory lock.</summary>
    /// <exception cref="InvalidOperationException">The database has a newer schema than this build knows.</exception>
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, $"SELECT pg_advisory_lock({MigrationLockKey})", null, cancellationToken);
        try
        {
            await ExecuteAsync(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)", null, cancellationToken);
            await using var read = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", connection);
            var current = Convert.ToInt32(await read.ExecuteScalarAsync(cancellationToken));
            if (current > LatestVersion)
                throw new InvalidOperationException($"The PostgreSQL database has schema version {current}, newer than this Parley build knows ({LatestVersion}). Upgrade Parley.");
            foreach (var (version, sql) in Migrations)
            {
                if (version <= current) continue;
                await using var tx = await connection.BeginTransactionAsync(cancellationToken);
                await ExecuteAsync(connection, sql, tx, cancellationToken);
                await ExecuteAsync(connection, $"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, now())", tx, cancellationToken);
                await tx.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({MigrationLockKey})", null, CancellationToken.None);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, NpgsqlTransaction? tx, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
