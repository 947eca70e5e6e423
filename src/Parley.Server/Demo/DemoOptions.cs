namespace Parley.Server.Demo;

/// <summary>The embedded demo (<c>Parley:Demo</c>): an organization, an API key and the agents of the agents folder.</summary>
public sealed class DemoOptions
{
    /// <summary>Create the demo organization and key at start (default true). Turn off in production.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Fixes the demo API key (env <c>Parley__Demo__ApiKey</c>). When unset, a key is generated at first start and kept
    /// in <c>parley-demo-key.txt</c> beside the database, so later starts print the same key.
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// The model of the demo PROMPT agent ("Assistant"). Default: the first configured model; with none configured
    /// (and no OPENAI_API_KEY), the demo offers only its FLOW agents.
    /// </summary>
    public string? Model { get; set; }

    /// <summary>Print the URL, key and agent ids to standard output at start (default true).</summary>
    public bool PrintBanner { get; set; } = true;

    /// <summary>
    /// The agent of the start page's chat widget (the demo publishable key is bound to it). Default: the demo agent
    /// <c>Lead qualifier</c> when it is loaded, else the first agent loaded.
    /// </summary>
    public Guid? WidgetAgentId { get; set; }

    /// <summary>
    /// Origins besides this server's own that may use the demo publishable key (<c>https://example.com</c>), for
    /// trying the widget on another local site. Default: none (only the start page).
    /// </summary>
    public List<string> WidgetOrigins { get; set; } = [];
}

/// <summary>Where agent files are read from (<c>Parley:Agents</c>).</summary>
public sealed class AgentFileOptions
{
    /// <summary>
    /// The folder of agent files (<c>*.json</c>, <c>*.yaml</c>, <c>*.yml</c>), relative to the working folder.
    /// Default: <c>agents</c> when that folder exists, else the demo agents shipped beside the server binary.
    /// </summary>
    public string? Path { get; set; }

    /// <summary>Reload files when they change (default true): a changed file publishes a new agent version.</summary>
    public bool Watch { get; set; } = true;
}
