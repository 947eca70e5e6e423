using Microsoft.Extensions.Logging;

namespace Parley.Server.Hosting;

/// <summary>
/// Keeps ASP.NET Core's hosting layer from starting a request <see cref="System.Diagnostics.Activity"/> and a logging
/// scope when nothing would use them. The hosting layer creates both for every request whenever its log category
/// (<see cref="Category"/>) is enabled at any level; per request, that category only logs at Information ("Request
/// starting", "Request finished"). A stream holds them for as long as it is open (≈ 1.3 KB each, measured in
/// docs/benchmarks.md, idle-streams). With Parley's default levels (Microsoft.AspNetCore at Warning) the category is
/// turned off — which also hides the few start-time warnings and errors the web host writes under it (an overridden
/// listen address, a failing startup filter; the latter still stops the process with its exception); a configured level of Information or lower for it (or for a prefix such as <c>Microsoft.AspNetCore</c>)
/// keeps request logs, scopes and activities as before, and so does a tracing listener (OpenTelemetry), for which
/// the hosting layer starts the activity regardless of logging.
/// </summary>
internal static class HostingDiagnostics
{
    /// <summary>The hosting layer's request log category.</summary>
    public const string Category = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>
    /// Adds a rule that turns <see cref="Category"/> off for every provider without a rule of its own, when the rules
    /// that apply to all providers set it above Information. Leaves the options alone when a wildcard rule could match.
    /// </summary>
    public static void TurnOffWhenSilent(LoggerFilterOptions options)
    {
        LoggerFilterRule? best = null;
        foreach (var rule in options.Rules)
        {
            if (rule.ProviderName is not null) continue; // a provider's own rule wins over this one anyway
            if (rule.CategoryName is { } name)
            {
                if (name.Contains('*', StringComparison.Ordinal)) return;
                if (!Category.StartsWith(name, StringComparison.OrdinalIgnoreCase)) continue;
                if (best?.CategoryName is { } current && current.Length > name.Length) continue;
            }
            else if (best?.CategoryName is not null)
            {
                continue;
            }
            best = rule;
        }
        var level = best is null ? options.MinLevel : best.LogLevel ?? options.MinLevel;
        if (level > LogLevel.Information) options.Rules.Add(new LoggerFilterRule(null, Category, LogLevel.None, null));
    }
}
