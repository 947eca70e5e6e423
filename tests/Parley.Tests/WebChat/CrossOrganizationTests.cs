using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>Another organization's key can neither read nor change a thread, and learns nothing about it.</summary>
public sealed class CrossOrganizationTests
{
    [Theory]
    [InlineData("GET", "/api/v1/threads/{thread}", null)]
    [InlineData("POST", "/api/v1/threads/{thread}/messages", "{\"message\":\"let me in\"}")]
    [InlineData("GET", "/api/v1/threads/{thread}/messages", null)]
    [InlineData("GET", "/api/v1/threads/{thread}/stream", null)]
    [InlineData("PATCH", "/api/v1/threads/{thread}/close", "{\"reason\":\"hijacked\"}")]
    public async Task Every_thread_endpoint_refuses_another_organizations_thread(string method, string path, string? body)
    {
        await using var server = await ParleyTestServer.StartAsync();
        var thread = await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId, variables: new { secret = "s3cr3t-value" });
        var threadId = thread.GetProperty("id").GetString()!;
        await using (var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all"))
        {
            await server.Client.SendAsync(threadId, "hi");
            await stream.ReadUntilAsync(e => e.EventType == "run.completed");
        }
        var (_, other) = await server.CreateOrganizationAsync("Other Inc");
        var before = server.CountRows();

        var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{thread}", threadId));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await other.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        var error = JsonDocument.Parse(text).RootElement;
        Assert.Equal("FORBIDDEN", error.GetProperty("code").GetString());
        Assert.Equal(403, error.GetProperty("status").GetInt32());
        Assert.DoesNotContain("s3cr3t", text);
        Assert.DoesNotContain("Lead qualifier", text);
        Assert.DoesNotContain("What's your name", text);
        Assert.Equal(before, server.CountRows());
        Assert.True((await server.Client.GetThreadAsync(threadId)).GetProperty("isActive").GetBoolean());
    }

    [Fact]
    public async Task Another_organization_neither_sees_nor_uses_this_organizations_agents()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var (_, other) = await server.CreateOrganizationAsync("Other Inc");

        var agents = await other.GetFromJsonAsync<JsonElement>("/api/v1/agents");
        Assert.Empty(agents.GetProperty("agents").EnumerateArray());

        var before = server.CountRows();
        var create = await other.PostAsJsonAsync("/api/v1/threads/web", new { agentId = ParleyTestServer.LeadQualifierId });
        Assert.Equal(HttpStatusCode.NotFound, create.StatusCode);
        Assert.Equal("NOT_FOUND", (await create.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        Assert.Equal(before, server.CountRows());
    }
}
