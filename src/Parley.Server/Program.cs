using Parley.Server.Hosting;

var app = ParleyApplication.Build(args);
app.Run();

/// <summary>The entry point (public so test hosts can reference the assembly).</summary>
public partial class Program;
