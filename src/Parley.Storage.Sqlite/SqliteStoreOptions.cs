namespace Parley.Storage.Sqlite;

/// <summary>Options of the SQLite store.</summary>
public sealed class SqliteStoreOptions
{
    /// <summary>
    /// An ADO.NET SQLite connection string (from <c>ConnectionStrings:Parley</c>). Default: <c>Data Source=parley.db</c>,
    /// a file in the working folder. The file and its folder are created when missing.
    /// </summary>
    public string ConnectionString { get; set; } = "Data Source=parley.db";

    /// <summary>
    /// WAL frames (one per page written, ≈ 4 KiB each) after which the background checkpoint also restarts the
    /// write-ahead log, so its file is reused instead of growing while requests read all the time (<c>Parley:Sqlite:WalRestartPages</c>;
    /// default 16,384: 64 MiB). Each restart holds writes back for the time it takes to copy the last pages into the
    /// database and sync both files (≈ 20–150 ms on a virtual disk under load): smaller values bound the file more
    /// tightly and restart more often. At least 64.
    /// </summary>
    public int WalRestartPages { get; set; } = DefaultWalRestartPages;

    /// <summary>Default of <see cref="WalRestartPages"/>: 16,384 pages (64 MiB).</summary>
    public const int DefaultWalRestartPages = 16384;
}
