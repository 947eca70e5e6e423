namespace Parley.Storage.Postgres;

/// <summary>Options of the PostgreSQL store and its run leases (<c>ConnectionStrings:Postgres</c>, <c>Parley:Runs</c>).</summary>
public sealed class PostgresStoreOptions
{
    /// <summary>An Npgsql connection string, for example <c>Host=db;Username=parley;Password=...;Database=parley</c>. Required.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// This node's name in run leases (<c>Parley:Cluster:NodeId</c>). Default: host name, process id and a random
    /// suffix, so two processes never share one.
    /// </summary>
    public string NodeId { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>
    /// Seconds a run lease lasts without renewal (<c>Parley:Runs:LeaseSeconds</c>, default 30). The executing node renews
    /// it every third of that; when a node dies, another node takes the run over once the lease ran out.
    /// </summary>
    public double LeaseSeconds { get; set; } = 30;

    /// <summary>Seconds between two looks for runs nobody executes: pending and unclaimed, or with an expired lease (<c>Parley:Runs:PollSeconds</c>, default 5).</summary>
    public double PollSeconds { get; set; } = 5;
}
