using Microsoft.Data.Sqlite;
using Parley.Storage.Sqlite;

namespace Parley.Tests.Storage;

/// <summary>
/// The SQLite store syncs its database file ahead of a WAL restart through SQLite's own file handle (its public VFS
/// interface), so the restart on the writer thread writes only its own pages.
/// </summary>
public sealed class SqliteFileSyncTests
{
    [Fact]
    public void Syncing_a_database_file_succeeds_and_leaves_its_content_and_another_connections_write_lock_intact()
    {
        var folder = Directory.CreateTempSubdirectory("parley-file-sync-").FullName;
        try
        {
            var connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(folder, "sync.db"), Pooling = false }.ToString();
            using var writer = new SqliteConnection(connectionString);
            writer.Open();
            Execute(writer, "PRAGMA journal_mode=WAL; CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept');");
            using var checkpointer = new SqliteConnection(connectionString);
            checkpointer.Open();
            Execute(checkpointer, "PRAGMA wal_checkpoint(PASSIVE);");

            // The writer holds the write lock while the other connection syncs the file.
            using var transaction = writer.BeginTransaction(deferred: false);
            Execute(writer, "INSERT INTO t VALUES ('pending');");
            Assert.Equal(SQLitePCL.raw.SQLITE_OK, SqliteFileSync.Sync(checkpointer));
            Assert.Equal(SQLitePCL.raw.SQLITE_OK, SqliteFileSync.Sync(checkpointer));

            // The lock still holds (a descriptor of the file closed by this process would have dropped it) ...
            using var third = new SqliteConnection(connectionString);
            third.Open();
            Execute(third, "PRAGMA busy_timeout=0;");
            var busy = Assert.Throws<SqliteException>(() => Execute(third, "BEGIN IMMEDIATE;"));
            Assert.Equal(SQLitePCL.raw.SQLITE_BUSY, busy.SqliteErrorCode);
            transaction.Commit();

            // ... and the file still holds what was committed before and after.
            using var read = third.CreateCommand();
            read.CommandText = "SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY rowid);";
            Assert.Equal("kept,pending", read.ExecuteScalar());
            Execute(third, "PRAGMA wal_checkpoint(TRUNCATE);");
            using var check = third.CreateCommand();
            check.CommandText = "PRAGMA integrity_check;";
            Assert.Equal("ok", check.ExecuteScalar());
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
