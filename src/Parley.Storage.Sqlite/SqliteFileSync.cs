using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Parley.Storage.Sqlite;

/// <summary>
/// Syncs a connection's database file to disk through SQLite's own file handle: <c>sqlite3_file_control</c> with
/// <c>SQLITE_FCNTL_FILE_POINTER</c> gives the connection's <c>sqlite3_file</c>, whose I/O methods' <c>xSync</c> is the
/// sync SQLite itself runs at the end of a checkpoint (both are SQLite's public C interface, sqlite3.h). Another
/// descriptor opened on the file by this process would not do: closing it would drop the POSIX locks SQLite holds on it.
/// </summary>
internal static unsafe partial class SqliteFileSync
{
    private const int SQLITE_FCNTL_FILE_POINTER = 7;
    private const int SQLITE_SYNC_NORMAL = 0x00002;

    // struct sqlite3_io_methods (sqlite3.h): the version, then the methods in this order.
    [StructLayout(LayoutKind.Sequential)]
    private struct IoMethods
    {
        public int Version;
        public IntPtr Close, Read, Write, Truncate;
        public delegate* unmanaged[Cdecl]<IntPtr, int, int> Sync;
    }

    // Read once: the provider is chosen when SQLitePCLRaw initializes and never changes.
    private static readonly bool ProviderIsBundled = SQLitePCL.raw.GetNativeLibraryName() == "e_sqlite3";

    [LibraryImport("e_sqlite3", EntryPoint = "sqlite3_file_control")]
    [UnmanagedCallConv(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static partial int FileControl(IntPtr db, byte* databaseName, int op, IntPtr* argument);

    /// <summary>
    /// Syncs the main database file of <paramref name="connection"/> (an open connection used by no other thread
    /// meanwhile). Returns SQLite's result code: 0 (<c>SQLITE_OK</c>) when synced.
    /// </summary>
    /// <remarks>
    /// The connection's handle is passed to <c>e_sqlite3</c>'s own <c>sqlite3_file_control</c>, so this runs only when
    /// SQLitePCLRaw's provider is the bundled <c>e_sqlite3</c>, as Microsoft.Data.Sqlite's default bundle is.
    /// </remarks>
    /// <exception cref="NotSupportedException">SQLitePCLRaw's provider is another native library.</exception>
    /// <exception cref="DllNotFoundException">No <c>e_sqlite3</c> library can be loaded.</exception>
    public static int Sync(SqliteConnection connection)
    {
        if (!ProviderIsBundled)
            throw new NotSupportedException($"SQLitePCLRaw's provider uses the native library '{SQLitePCL.raw.GetNativeLibraryName()}', not e_sqlite3.");
        IntPtr file;
        int rc;
        fixed (byte* main = "main\0"u8)
            rc = FileControl(connection.Handle!.DangerousGetHandle(), main, SQLITE_FCNTL_FILE_POINTER, &file);
        if (rc != 0) return rc;
        var methods = file == IntPtr.Zero ? null : *(IoMethods**)file; // struct sqlite3_file { const sqlite3_io_methods *pMethods; }
        return methods == null ? 1 /* SQLITE_ERROR: no file open */ : methods->Sync(file, SQLITE_SYNC_NORMAL);
    }
}
