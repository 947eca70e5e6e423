using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>Every invalid input gets a 400 (or 404) envelope that names the field, and changes nothing.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private ParleyTestServer _server = null!;
    private string _threadId = "";

    public async ValueTask InitializeAsync()
    {
        _server = await ParleyTestServer.StartAsync();
        _threadId = (await _server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(_server.Client, _threadId, events: "all");
        await _server.Client.SendAsync(_threadId, "hi");
        await stream.ReadUntilAsync(e => e.EventType == "run.completed"); // nothing is written in the background from here on
    }

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    private const string T = "{thread}";
    private static readonly string Agent = ParleyTestServer.LeadQualifierId.ToString();
    private static readonly string Unknown = Guid.NewGuid().ToString();

    public static TheoryData<string, string, string?, int, string, string> Cases() => new()
    {
        // method, path, body, status, code, the message must contain
        { "POST", "/api/v1/threads/web", "{}", 400, "BAD_REQUEST", "agentId: is required" },
        { "POST", "/api/v1/threads/web", "{\"agentId\":\"not-a-uuid\"}", 400, "BAD_REQUEST", "agentId: must be a UUID" },
        { "POST", "/api/v1/threads/web", "{\"agentId\":5}", 400, "BAD_REQUEST", "agentId: must be a string" },
        { "POST", "/api/v1/threads/web", $"{{\"agentId\":\"{Agent}\",\"metadata\":{{\"a\":1}}}}", 400, "BAD_REQUEST", "metadata.a: must be a string" },
        { "POST", "/api/v1/threads/web", $"{{\"agentId\":\"{Agent}\",\"variables\":[]}}", 400, "BAD_REQUEST", "variables: must be an object" },
        { "POST", "/api/v1/threads/web", "not json", 400, "BAD_REQUEST", "body: not valid JSON" },
        { "POST", "/api/v1/threads/web", "[1,2]", 400, "BAD_REQUEST", "body: must be a JSON object" },
        { "POST", "/api/v1/threads/web", null, 400, "BAD_REQUEST", "body: a JSON object is required" },
        { "POST", "/api/v1/threads/web", $"{{\"agentId\":\"{Agent}\",\"metadata\":{{\"pad\":\"{new string('x', 70_000)}\"}}}}", 400, "BAD_REQUEST", "body: larger than the limit of 65536 bytes" },
        { "POST", "/api/v1/threads/web", $"{{\"agentId\":\"{Unknown}\"}}", 404, "NOT_FOUND", "agentId: no agent" },
        { "POST", "/api/v1/threads/not-a-uuid/messages", "{\"message\":\"hi\"}", 400, "BAD_REQUEST", "threadId: must be a UUID" },
        { "POST", $"/api/v1/threads/{T}/messages", "{}", 400, "BAD_REQUEST", "message: is required" },
        { "POST", $"/api/v1/threads/{T}/messages", "{\"message\":\"\"}", 400, "BAD_REQUEST", "message: must not be empty" },
        { "POST", $"/api/v1/threads/{T}/messages", "{\"message\":\"   \"}", 400, "BAD_REQUEST", "message: must not be empty" },
        { "POST", $"/api/v1/threads/{T}/messages", "{\"message\":42}", 400, "BAD_REQUEST", "message: must be a string, got a number" },
        { "POST", $"/api/v1/threads/{T}/messages", "{\"message\":null}", 400, "BAD_REQUEST", "message: is required" },
        { "POST", $"/api/v1/threads/{T}/messages", $"{{\"message\":\"{new string('x', 8001)}\"}}", 400, "BAD_REQUEST", "message: must be at most 8000 characters" },
        { "POST", $"/api/v1/threads/{Unknown}/messages", "{\"message\":\"hi\"}", 404, "NOT_FOUND", "threadId: no thread" },
        { "GET", $"/api/v1/threads/{T}/messages?limit=0", null, 400, "BAD_REQUEST", "limit: must be an integer from 1 to 100" },
        { "GET", $"/api/v1/threads/{T}/messages?limit=101", null, 400, "BAD_REQUEST", "limit: must be an integer from 1 to 100" },
        { "GET", $"/api/v1/threads/{T}/messages?limit=ten", null, 400, "BAD_REQUEST", "limit:" },
        { "GET", $"/api/v1/threads/{T}/messages?cursor=abc", null, 400, "BAD_REQUEST", "cursor:" },
        { "GET", $"/api/v1/threads/{Unknown}/messages", null, 404, "NOT_FOUND", "threadId: no thread" },
        { "GET", "/api/v1/threads/xyz/stream", null, 400, "BAD_REQUEST", "threadId: must be a UUID" },
        { "GET", $"/api/v1/threads/{T}/stream?events=tokens", null, 400, "BAD_REQUEST", "events:" },
        { "GET", $"/api/v1/threads/{T}/stream?lastEventId=-3", null, 400, "BAD_REQUEST", "Last-Event-ID:" },
        { "GET", $"/api/v1/threads/{Unknown}/stream", null, 404, "NOT_FOUND", "threadId: no thread" },
        { "PATCH", $"/api/v1/threads/{T}/close", "{\"reason\":5}", 400, "BAD_REQUEST", "reason: must be a string" },
        { "PATCH", $"/api/v1/threads/{Unknown}/close", "{\"reason\":\"x\"}", 404, "NOT_FOUND", "threadId: no thread" },
        { "GET", "/api/v1/nothing-here", null, 404, "NOT_FOUND", "No endpoint" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_is_refused_with_the_envelope_and_changes_nothing(string method, string path, string? body, int status, string code, string messagePart)
    {
        var before = _server.CountRows();
        var threadBefore = await _server.Client.GetThreadAsync(_threadId);

        var request = new HttpRequestMessage(new HttpMethod(method), path.Replace(T, _threadId));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await _server.Client.SendAsync(request);

        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        var error = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(status, error.GetProperty("status").GetInt32());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(error.GetProperty("success").GetBoolean());
        Assert.Contains(messagePart, error.GetProperty("message").GetString());

        Assert.Equal(before, _server.CountRows());
        var threadAfter = await _server.Client.GetThreadAsync(_threadId);
        Assert.Equal(threadBefore.GetProperty("lastEventId").GetInt64(), threadAfter.GetProperty("lastEventId").GetInt64());
        Assert.True(threadAfter.GetProperty("isActive").GetBoolean());
    }

    [Fact]
    public async Task A_missing_or_unknown_key_is_refused_with_401_and_a_bearer_key_is_accepted()
    {
        var anonymous = _server.CreateClient(null);
        var missing = await anonymous.GetAsync("/api/v1/agents");
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        var error = await missing.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("UNAUTHORIZED", error.GetProperty("code").GetString());
        Assert.Contains("X-API-Key", error.GetProperty("message").GetString());

        var wrong = await _server.CreateClient("pk_wrong").PostAsJsonAsync($"/api/v1/threads/{_threadId}/messages", new { message = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("Invalid API key.", (await wrong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());

        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", ParleyTestServer.DemoKey);
        var agents = await anonymous.GetFromJsonAsync<JsonElement>("/api/v1/agents");
        Assert.Contains(agents.GetProperty("agents").EnumerateArray(), a => a.GetProperty("name").GetString() == "Lead qualifier");
    }

    [Fact]
    public async Task A_key_revoked_while_in_use_is_refused_with_401_from_the_next_request_on()
    {
        // The server keeps keys it found valid in memory (ApiKeyCache): revoking must drop the key from it at once.
        var organizations = _server.Services.GetRequiredService<IOrganizationStore>();
        var (organizationId, client) = await _server.CreateOrganizationAsync("Revokes");
        var keyHash = ApiKeyHasher.Hash(client.DefaultRequestHeaders.GetValues("X-API-Key").Single());
        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/agents")).StatusCode);
        var key = await organizations.FindApiKeyByHashAsync(keyHash);

        Assert.True(await organizations.RevokeApiKeyAsync(organizationId, key!.Id, DateTimeOffset.UtcNow));

        var refused = await client.PostAsJsonAsync($"/api/v1/threads/{_threadId}/messages", new { message = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("Invalid API key.", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/agents")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _server.Client.GetAsync("/api/v1/agents")).StatusCode); // other keys still work
    }
}
