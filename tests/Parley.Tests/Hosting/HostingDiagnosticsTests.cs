using Microsoft.Extensions.Logging;
using Parley.Server.Hosting;

namespace Parley.Tests.Hosting;

/// <summary>
/// The hosting layer's request logs (and with them its per-request Activity and log scope) are off while the configured
/// levels would drop them, and come back as soon as an operator asks for them.
/// </summary>
public sealed class HostingDiagnosticsTests
{
    private static async Task<(bool Any, bool Information)> HostingLogsAsync(params string[] levels)
    {
        await using var app = ParleyApplication.Build(["--ConnectionStrings:Parley=Data Source=:memory:", .. levels]);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(HostingDiagnostics.Category);
        return (logger.IsEnabled(LogLevel.Critical), logger.IsEnabled(LogLevel.Information));
    }

    [Fact]
    public async Task With_aspnetcore_at_warning_the_request_log_category_is_off()
    {
        var logs = await HostingLogsAsync("--Logging:LogLevel:Default=Information", "--Logging:LogLevel:Microsoft.AspNetCore=Warning");
        Assert.False(logs.Any);
    }

    [Fact]
    public async Task An_operator_who_turns_request_logs_on_gets_them()
    {
        Assert.True((await HostingLogsAsync("--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Microsoft.AspNetCore=Information")).Information);
        Assert.True((await HostingLogsAsync("--Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information")).Information);
        Assert.True((await HostingLogsAsync("--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Microsoft.AspNetCore.Hosting=Debug")).Information);
    }

    [Fact]
    public async Task A_provider_rule_for_the_category_keeps_it_for_that_provider()
    {
        var logs = await HostingLogsAsync("--Logging:LogLevel:Default=Warning", "--Logging:Console:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information");
        Assert.True(logs.Information);
    }
}
