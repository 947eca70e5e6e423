using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Agents;
using Parley.Core.Storage;
using Parley.Storage.Sqlite;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>An unexpected failure answers the 500 envelope and reveals nothing of the server's insides.</summary>
public sealed class ServerErrorTests
{
    /// <summary>An agent store whose listing fails as a broken disk would.</summary>
    private sealed class FailingAgentStore(SqliteStore inner) : IAgentStore
    {
        public Task<(Agent Agent, AgentVersion Version, bool Published)> PublishAsync(Guid organizationId, Guid agentId, AgentDefinition definition, string contentHash, CancellationToken cancellationToken = default) =>
            inner.PublishAsync(organizationId, agentId, definition, contentHash, cancellationToken);
        public Task<Agent?> GetAgentAsync(Guid id, CancellationToken cancellationToken = default) => inner.GetAgentAsync(id, cancellationToken);
        public Task<AgentVersion?> GetAgentVersionAsync(Guid id, CancellationToken cancellationToken = default) => inner.GetAgentVersionAsync(id, cancellationToken);
        public Task<IReadOnlyList<(Agent Agent, AgentVersion Version)>> ListAgentsAsync(Guid organizationId, CancellationToken cancellationToken = default) =>
            throw new IOException("disk /var/lib/parley/secret-path is on fire");
    }

    [Fact]
    public async Task An_unexpected_failure_answers_500_in_the_envelope_without_details()
    {
        await using var server = await ParleyTestServer.StartAsync(configure: b =>
            b.Services.AddSingleton<IAgentStore>(sp => new FailingAgentStore(sp.GetRequiredService<SqliteStore>())));
        var response = await server.Client.GetAsync("/api/v1/agents");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        var error = JsonDocument.Parse(text).RootElement;
        Assert.Equal(500, error.GetProperty("status").GetInt32());
        Assert.Equal("INTERNAL_SERVER_ERROR", error.GetProperty("code").GetString());
        Assert.False(error.GetProperty("success").GetBoolean());
        Assert.DoesNotContain("secret-path", text);
        Assert.DoesNotContain("IOException", text);
        Assert.DoesNotContain(" at ", text);
    }
}
