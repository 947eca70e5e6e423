using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>The OpenAPI document, the API reference page, the health check and the start page.</summary>
public sealed class ApiDocumentTests
{
    [Fact]
    public async Task The_openapi_document_describes_every_web_chat_endpoint_with_its_error_shapes()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var anonymous = server.CreateClient(null);
        var document = await anonymous.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        Assert.True(paths.GetProperty("/api/v1/threads/web").TryGetProperty("post", out var create));
        Assert.True(create.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
        foreach (var status in new[] { "200", "400", "401", "404", "500" })
            Assert.True(create.GetProperty("responses").TryGetProperty(status, out _), $"POST /api/v1/threads/web lacks {status}");
        Assert.True(paths.GetProperty("/api/v1/threads/{threadId}/messages").TryGetProperty("post", out var send));
        Assert.True(send.GetProperty("responses").TryGetProperty("403", out _));
        Assert.True(paths.GetProperty("/api/v1/threads/{threadId}/messages").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/api/v1/threads/{threadId}/stream").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/api/v1/threads/{threadId}/close").TryGetProperty("patch", out _));
        Assert.True(paths.GetProperty("/api/v1/agents").TryGetProperty("get", out _));
        var schemas = document.GetProperty("components").GetProperty("schemas");
        Assert.True(schemas.TryGetProperty("WebChatError", out var error));
        Assert.True(error.GetProperty("properties").TryGetProperty("success", out _));

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/docs")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
        Assert.Contains("Parley", await anonymous.GetStringAsync("/"));
    }
}
