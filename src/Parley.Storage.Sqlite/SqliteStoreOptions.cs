namespace Parley.Storage.Sqlite;

/// <summary>Options of the SQLite store.</summary>
public sealed class SqliteStoreOptions
{
    /// <summary>
    /// An ADO.NET SQLite connection string (from <c>ConnectionStrings:Parley</c>). Default: <c>Data Source=parley.db</c>,
    /// a file in the working folder. The file and its folder are created when missing.
    /// </summary>
    public string ConnectionString { get; set; } = "Data Source=parley.db";
}
