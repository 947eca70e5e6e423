using Microsoft.Data.Sqlite;

namespace Parley.Storage.Sqlite;

/// <summary>
/// The SQLite schema as numbered migrations, applied in order at start inside one transaction each and recorded in
/// <c>schema_migrations</c>. Never edit a shipped migration: add the next one.
/// </summary>
internal static class SqliteSchema
{
    private static readonly (int Version, string Sql)[] Migrations =
    [
        (1, """
            CREATE TABLE organizations (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL);
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                organization_id TEXT NOT NULL REFERENCES organizations(id),
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL,
                revoked_at TEXT);
            CREATE TABLE agents (
                id TEXT PRIMARY KEY,
                organization_id TEXT NOT NULL REFERENCES organizations(id),
                name TEXT NOT NULL,
                description TEXT,
                agent_type TEXT NOT NULL,
                current_version_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL);
            CREATE INDEX agents_organization ON agents(organization_id, name);
            CREATE TABLE agent_versions (
                id TEXT PRIMARY KEY,
                agent_id TEXT NOT NULL REFERENCES agents(id),
                version INTEGER NOT NULL,
                definition TEXT NOT NULL,
                content_hash TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (agent_id, version));
            CREATE TABLE threads (
                id TEXT PRIMARY KEY,
                organization_id TEXT NOT NULL REFERENCES organizations(id),
                agent_id TEXT NOT NULL REFERENCES agents(id),
                agent_version_id TEXT NOT NULL REFERENCES agent_versions(id),
                channel TEXT NOT NULL,
                metadata TEXT NOT NULL,
                variables TEXT NOT NULL,
                state TEXT NOT NULL,
                is_active INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                closed_at TEXT,
                closed_reason TEXT,
                window_expires_at TEXT NOT NULL,
                last_sequence INTEGER NOT NULL);
            CREATE INDEX threads_open_by_expiry ON threads(window_expires_at) WHERE is_active = 1;
            CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL REFERENCES threads(id),
                direction TEXT NOT NULL,
                body TEXT NOT NULL,
                status TEXT NOT NULL,
                run_id TEXT,
                quick_replies TEXT,
                sequence INTEGER NOT NULL,
                created_at TEXT NOT NULL);
            CREATE UNIQUE INDEX messages_by_thread ON messages(thread_id, sequence);
            CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL REFERENCES threads(id),
                organization_id TEXT NOT NULL,
                agent_version_id TEXT NOT NULL,
                input_message_id TEXT,
                status TEXT NOT NULL,
                created_at TEXT NOT NULL,
                started_at TEXT,
                ended_at TEXT,
                error TEXT);
            CREATE INDEX runs_unfinished ON runs(thread_id, status) WHERE status IN ('pending', 'running');
            CREATE TABLE thread_events (
                thread_id TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                type TEXT NOT NULL,
                run_id TEXT,
                created_at TEXT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (thread_id, sequence)) WITHOUT ROWID;
            """),
        (2, """
            ALTER TABLE messages ADD COLUMN input_tokens INTEGER;
            ALTER TABLE messages ADD COLUMN output_tokens INTEGER;
            ALTER TABLE runs ADD COLUMN input_tokens INTEGER;
            ALTER TABLE runs ADD COLUMN output_tokens INTEGER;
            CREATE INDEX runs_by_organization ON runs(organization_id, created_at);
            """),
        (3, """
            ALTER TABLE api_keys ADD COLUMN agent_id TEXT;
            ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER;
            ALTER TABLE organizations ADD COLUMN token_budget INTEGER;
            """),
        // Agent-server threads are created without an assistant (agent_id and agent_version_id become nullable: SQLite
        // cannot drop NOT NULL in place, so the table is rebuilt as its documentation prescribes, with foreign keys off
        // for the migration); the dialect lists threads per organization and runs per thread.
        (4, """
            CREATE TABLE threads_new (
                id TEXT PRIMARY KEY,
                organization_id TEXT NOT NULL REFERENCES organizations(id),
                agent_id TEXT REFERENCES agents(id),
                agent_version_id TEXT REFERENCES agent_versions(id),
                channel TEXT NOT NULL,
                metadata TEXT NOT NULL,
                variables TEXT NOT NULL,
                state TEXT NOT NULL,
                is_active INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                closed_at TEXT,
                closed_reason TEXT,
                window_expires_at TEXT NOT NULL,
                last_sequence INTEGER NOT NULL);
            INSERT INTO threads_new SELECT id, organization_id, agent_id, agent_version_id, channel, metadata, variables, state, is_active,
                created_at, updated_at, closed_at, closed_reason, window_expires_at, last_sequence FROM threads;
            DROP TABLE threads;
            ALTER TABLE threads_new RENAME TO threads;
            CREATE INDEX threads_open_by_expiry ON threads(window_expires_at) WHERE is_active = 1;
            CREATE INDEX threads_by_organization ON threads(organization_id, created_at);
            CREATE INDEX runs_by_thread ON runs(thread_id);
            """),
        // Publishable keys for the browser widget (docs/widget.md): bound to one agent and a list of allowed origins.
        (5, """
            CREATE TABLE publishable_keys (
                id TEXT PRIMARY KEY,
                organization_id TEXT NOT NULL REFERENCES organizations(id),
                agent_id TEXT NOT NULL REFERENCES agents(id),
                name TEXT NOT NULL,
                key TEXT NOT NULL UNIQUE,
                allowed_origins TEXT NOT NULL,
                token_secret TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT);
            CREATE INDEX publishable_keys_by_organization ON publishable_keys(organization_id, created_at);
            """),
        // A running total of each organization's tokens, kept by triggers in the transaction that writes a run's usage
        // (inserted, updated, or deleted with a rollback or its thread), so the budget check before every message reads
        // one row instead of summing all of the organization's runs. Same rule as the sum it replaces: runs whose
        // input_tokens is set count their input and output tokens.
        (6, """
            ALTER TABLE organizations ADD COLUMN tokens_used INTEGER NOT NULL DEFAULT 0;
            UPDATE organizations SET tokens_used = (SELECT COALESCE(SUM(input_tokens + COALESCE(output_tokens, 0)), 0) FROM runs
                WHERE runs.organization_id = organizations.id AND input_tokens IS NOT NULL);
            CREATE TRIGGER runs_usage_inserted AFTER INSERT ON runs WHEN NEW.input_tokens IS NOT NULL BEGIN
                UPDATE organizations SET tokens_used = tokens_used + NEW.input_tokens + COALESCE(NEW.output_tokens, 0) WHERE id = NEW.organization_id;
            END;
            CREATE TRIGGER runs_usage_updated AFTER UPDATE OF input_tokens, output_tokens ON runs BEGIN
                UPDATE organizations SET tokens_used = tokens_used
                    - CASE WHEN OLD.input_tokens IS NULL THEN 0 ELSE OLD.input_tokens + COALESCE(OLD.output_tokens, 0) END
                    + CASE WHEN NEW.input_tokens IS NULL THEN 0 ELSE NEW.input_tokens + COALESCE(NEW.output_tokens, 0) END
                WHERE id = NEW.organization_id;
            END;
            CREATE TRIGGER runs_usage_deleted AFTER DELETE ON runs WHEN OLD.input_tokens IS NOT NULL BEGIN
                UPDATE organizations SET tokens_used = tokens_used - OLD.input_tokens - COALESCE(OLD.output_tokens, 0) WHERE id = OLD.organization_id;
            END;
            """),
        // No table changes: a write of message.delta events only leaves its thread's row as it is, so a thread's last
        // sequence is its row's or its last event's, whichever is higher (SqliteStore.Threads, LastSequenceOfThread). A
        // build before this one reads the row alone and would reuse sequence numbers of a thread that streamed: the
        // version makes it refuse the file ("newer than this Parley build knows") instead.
        (7, "SELECT 1;"),
        // A run of consecutive message.delta events is stored as one row (SqliteStore.EventInserter): last_sequence is
        // its last event's sequence (NULL for a row of one event) and data the events' data joined by '\n'. A build
        // before this one would read such a row as one event: the version makes it refuse the file instead.
        (8, "ALTER TABLE thread_events ADD COLUMN last_sequence INTEGER;"),
    ];

    /// <summary>The newest schema version this build knows.</summary>
    public static int LatestVersion => Migrations[^1].Version;

    /// <summary>Switches the database to WAL and applies the migrations it lacks.</summary>
    /// <exception cref="InvalidOperationException">The database has a newer schema than this build knows.</exception>
    public static void Migrate(SqliteConnection connection)
    {
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);");
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
        var current = Convert.ToInt32(read.ExecuteScalar());
        if (current > LatestVersion)
            throw new InvalidOperationException($"The SQLite database has schema version {current}, newer than this Parley build knows ({LatestVersion}). Upgrade Parley.");
        // A migration may rebuild a table that others reference (SQLite's ALTER TABLE procedure): foreign keys are off
        // while migrations run (the pragma is a no-op inside a transaction) and checked before each commit.
        Execute(connection, "PRAGMA foreign_keys=OFF;");
        try
        {
            foreach (var (version, sql) in Migrations)
            {
                if (version <= current) continue;
                using var tx = connection.BeginTransaction();
                Execute(connection, sql, tx);
                using (var check = connection.CreateCommand())
                {
                    check.Transaction = tx;
                    check.CommandText = "PRAGMA foreign_key_check;";
                    using var violations = check.ExecuteReader();
                    if (violations.Read())
                        throw new InvalidOperationException($"SQLite migration {version} would break a foreign key (table {violations.GetString(0)}).");
                }
                Execute(connection, $"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, '{DateTimeOffset.UtcNow:O}')", tx);
                tx.Commit();
            }
        }
        finally
        {
            Execute(connection, "PRAGMA foreign_keys=ON;");
        }
    }

    private static void Execute(SqliteConnection connection, string sql, SqliteTransaction? tx = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
