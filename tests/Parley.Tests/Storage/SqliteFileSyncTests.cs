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
    public void Syncing_a_database_file_succeeds_and_leaves_the_process_locks_on_it_the_write_lock_and_its_content_intact()
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
            var databaseLocks = OperatingSystem.IsLinux() ? ProcessLocksOn(Path.Combine(folder, "sync.db")) : null;
            Assert.Equal(SQLitePCL.raw.SQLITE_OK, SqliteFileSync.Sync(checkpointer));
            Assert.Equal(SQLitePCL.raw.SQLITE_OK, SqliteFileSync.Sync(checkpointer));

            // The kernel still holds this process's POSIX locks on the database file: a descriptor of the file opened and
            // closed by the process would have dropped them all, unseen by SQLite, which tracks its own connections'
            // locks in memory (so the connections below could not notice it).
            if (databaseLocks is not null)
            {
                Assert.NotEmpty(databaseLocks);
                Assert.Equal(databaseLocks, ProcessLocksOn(Path.Combine(folder, "sync.db")));
            }

            // The write lock still holds ...
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

    // This process's POSIX locks on the file at path, from /proc/locks ("1: POSIX  ADVISORY  READ 4242 08:01:1234 1073741826
    // 1073742335"), found by the file's inode, which is read from the fdinfo of a descriptor SQLite holds open on it: opening
    // the file here to learn it would itself drop the locks when closed.
    private static List<string> ProcessLocksOn(string path)
    {
        var full = Path.GetFullPath(path);
        var descriptor = Directory.GetFiles("/proc/self/fd").First(fd =>
        {
            try { return new FileInfo(fd).LinkTarget == full; }
            catch (IOException) { return false; } // a descriptor closed meanwhile
        });
        var inode = File.ReadAllLines($"/proc/self/fdinfo/{Path.GetFileName(descriptor)}")
            .Single(line => line.StartsWith("ino:", StringComparison.Ordinal))["ino:".Length..].Trim();
        var pid = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return [.. File.ReadAllLines("/proc/locks")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 8 && f[1] == "POSIX" && f[4] == pid && f[5].EndsWith(":" + inode, StringComparison.Ordinal))
            .Select(f => string.Join(' ', f[1..]))
            .Order(StringComparer.Ordinal)];
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
