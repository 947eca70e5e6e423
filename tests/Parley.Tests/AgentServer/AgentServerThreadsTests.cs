using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.AgentServer;

/// <summary>Agent-server assistants, threads, state, errors and organization scoping, over real HTTP.</summary>
public sealed class AgentServerThreadsTests
{
    private static readonly string Lead = ParleyTestServer.LeadQualifierId.ToString("D");

    [Fact]
    public async Task Ok_and_info_answer_without_a_key()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var anonymous = server.CreateClient(null);
        Assert.True((await anonymous.GetFromJsonAsync<JsonElement>("/ok")).GetProperty("ok").GetBoolean());
        var info = await anonymous.GetFromJsonAsync<JsonElement>("/info");
        Assert.True(info.GetProperty("flags").GetProperty("assistants").GetBoolean());
        Assert.False(info.GetProperty("flags").GetProperty("crons").GetBoolean());
    }

    [Fact]
    public async Task Assistants_are_the_organizations_agents_found_by_id_or_graph_id()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var found = await server.Client.OkJsonAsync(HttpMethod.Post, "/assistants/search", new { graph_id = "Lead qualifier", limit = 10 });
        var assistant = Assert.Single(found.EnumerateArray());
        Assert.Equal(Lead, assistant.GetProperty("assistant_id").GetString());
        Assert.Equal("Lead qualifier", assistant.GetProperty("graph_id").GetString());
        Assert.Equal(1, assistant.GetProperty("version").GetInt32());
        Assert.Equal(JsonValueKind.Object, assistant.GetProperty("config").ValueKind);

        Assert.Equal(Lead, (await server.Client.OkJsonAsync(HttpMethod.Get, $"/assistants/{Lead}")).GetProperty("assistant_id").GetString());
        Assert.Equal(Lead, (await server.Client.OkJsonAsync(HttpMethod.Get, "/assistants/Lead%20qualifier")).GetProperty("assistant_id").GetString());
        var (status, error) = await server.Client.SendJsonAsync(HttpMethod.Get, "/assistants/no-such-graph");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("No assistant found for \"no-such-graph\"", error.Detail());

        var (_, other) = await server.CreateOrganizationAsync("Other");
        Assert.Equal(HttpStatusCode.NotFound, (await other.SendJsonAsync(HttpMethod.Get, $"/assistants/{Lead}")).Status);
        Assert.Empty((await other.OkJsonAsync(HttpMethod.Post, "/assistants/search", new { })).EnumerateArray());
    }

    [Fact]
    public async Task A_thread_is_created_with_metadata_read_searched_and_deleted()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var created = await server.Client.OkJsonAsync(HttpMethod.Post, "/threads", new { metadata = new { purpose = "capture" } });
        var threadId = created.GetProperty("thread_id").GetString()!;
        Assert.Equal("idle", created.GetProperty("status").GetString());
        Assert.Equal("capture", created.GetProperty("metadata").GetProperty("purpose").GetString());
        Assert.Equal(JsonValueKind.Object, created.GetProperty("config").ValueKind);
        await server.Client.CreateAgentServerThreadAsync(new { purpose = "other" });

        var read = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}");
        Assert.Equal(created.GetProperty("created_at").GetString(), read.GetProperty("created_at").GetString());

        var byMetadata = await server.Client.OkJsonAsync(HttpMethod.Post, "/threads/search", new { metadata = new { purpose = "capture" } });
        Assert.Equal(threadId, Assert.Single(byMetadata.EnumerateArray()).GetProperty("thread_id").GetString());
        Assert.Equal(2, (await server.Client.OkJsonAsync(HttpMethod.Post, "/threads/search", new { limit = 10 })).GetArrayLength());
        Assert.Equal(1, (await server.Client.OkJsonAsync(HttpMethod.Post, "/threads/search", new { limit = 1, offset = 1 })).GetArrayLength());
        Assert.Equal(threadId, Assert.Single((await server.Client.OkJsonAsync(HttpMethod.Post, "/threads/search", new { ids = new[] { threadId } })).EnumerateArray())
            .GetProperty("thread_id").GetString());

        var (deleted, _) = await server.Client.SendJsonAsync(HttpMethod.Delete, $"/threads/{threadId}");
        Assert.Equal(HttpStatusCode.NoContent, deleted);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).Status);
        Assert.Equal((1L, 0L, 0L, 1L), server.CountRows());
    }

    [Fact]
    public async Task A_client_chosen_thread_id_is_kept_and_a_second_create_conflicts_unless_do_nothing()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var id = Guid.NewGuid().ToString("D");
        Assert.Equal(id, (await server.Client.OkJsonAsync(HttpMethod.Post, "/threads", new { thread_id = id })).GetProperty("thread_id").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await server.Client.SendJsonAsync(HttpMethod.Post, "/threads", new { thread_id = id })).Status);
        Assert.Equal(id, (await server.Client.OkJsonAsync(HttpMethod.Post, "/threads", new { thread_id = id, if_exists = "do_nothing" })).GetProperty("thread_id").GetString());
    }

    [Fact]
    public async Task The_state_of_a_thread_with_no_run_is_empty_as_the_reference_shows()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        var state = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state");
        Assert.Equal("{}", state.GetProperty("values").GetRawText());
        Assert.Empty(state.GetProperty("next").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, state.GetProperty("checkpoint").ValueKind);
    }

    [Fact]
    public async Task Bad_input_gets_detail_errors_naming_the_field_and_writes_nothing()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        var before = server.CountRows();
        async Task Expect(HttpStatusCode status, HttpMethod method, string url, object? body, string detailPart)
        {
            var (actual, error) = await server.Client.SendJsonAsync(method, url, body);
            Assert.True(actual == status, $"{method} {url}: {(int)actual} {error}");
            Assert.Contains(detailPart, error.Detail());
        }
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Get, "/threads/not-a-uuid", null, "thread_id");
        await Expect(HttpStatusCode.NotFound, HttpMethod.Get, $"/threads/{Guid.NewGuid()}", null, "not found");
        await Expect(HttpStatusCode.NotFound, HttpMethod.Get, $"/threads/{Guid.NewGuid()}/state", null, "not found");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, "/threads", new { metadata = new { n = 1 } }, "metadata.n");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, "/threads/search", new { limit = -1 }, "limit");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, "/threads/search", new { status = "sleepy" }, "status");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs", new { }, "assistant_id");
        await Expect(HttpStatusCode.NotFound, HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = "no-such-graph" }, "No assistant found");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = Lead, stream_mode = "bogus" }, "stream_mode");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = Lead, stream_mode = "debug" }, "not implemented");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = Lead, multitask_strategy = "sometimes" }, "multitask_strategy");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs",
            new { assistant_id = Lead, input = new { messages = new[] { new { role = "system", content = "x" } } } }, "input.messages[0].role");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Post, $"/threads/{threadId}/runs",
            new { assistant_id = Lead, input = new { messages = new[] { new { role = "user", content = " " } } } }, "input.messages[0].content");
        await Expect(HttpStatusCode.NotFound, HttpMethod.Post, $"/threads/{Guid.NewGuid()}/runs", new { assistant_id = Lead }, "not found");
        await Expect(HttpStatusCode.NotFound, HttpMethod.Get, $"/threads/{threadId}/runs/{Guid.NewGuid()}", null, "not found");
        await Expect(HttpStatusCode.UnprocessableEntity, HttpMethod.Get, $"/threads/{threadId}/runs?limit=x", null, "limit");

        using var badJson = await server.Client.PostAsync($"/threads/{threadId}/runs", new StringContent("{bad", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, badJson.StatusCode);
        Assert.Contains("not valid JSON", (await badJson.Content.ReadFromJsonAsync<JsonElement>()).Detail());

        using var stream = await server.Client.GetAsync($"/threads/{threadId}/stream?stream_modes=bogus");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, stream.StatusCode);
        Assert.Contains("stream_modes", (await stream.Content.ReadFromJsonAsync<JsonElement>()).Detail());
        using var badId = new HttpRequestMessage(HttpMethod.Get, $"/threads/{threadId}/stream");
        badId.Headers.Add("Last-Event-ID", "banana");
        using var badIdResponse = await server.Client.SendAsync(badId);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, badIdResponse.StatusCode);
        Assert.Contains("Last-Event-ID", (await badIdResponse.Content.ReadFromJsonAsync<JsonElement>()).Detail());
        using var unknownStream = await server.Client.GetAsync($"/threads/{Guid.NewGuid()}/stream");
        Assert.Equal(HttpStatusCode.NotFound, unknownStream.StatusCode);
        Assert.Contains("not found", (await unknownStream.Content.ReadFromJsonAsync<JsonElement>()).Detail());

        var anonymous = await server.CreateClient(null).SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.Status);
        Assert.Contains("x-api-key", anonymous.Body.Detail());
        var wrongKey = await server.CreateClient("pk_wrong").SendJsonAsync(HttpMethod.Post, "/threads", new { });
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.Status);
        Assert.Equal("Invalid API key.", wrongKey.Body.Detail());

        var unknownRoute = await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/nothing");
        Assert.Equal(HttpStatusCode.NotFound, unknownRoute.Status);
        Assert.Equal("Not Found", unknownRoute.Body.Detail());

        Assert.Equal(before, server.CountRows());
    }

    [Fact]
    public async Task Another_organizations_threads_and_runs_answer_404_and_reveal_nothing()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync(new { secret = "yes" });
        var run = await server.Client.CreateRunAsync(threadId, Lead);
        var runId = run.GetProperty("run_id").GetString()!;
        var (_, other) = await server.CreateOrganizationAsync("Other");

        foreach (var (method, url) in new[]
        {
            (HttpMethod.Get, $"/threads/{threadId}"), (HttpMethod.Get, $"/threads/{threadId}/state"), (HttpMethod.Delete, $"/threads/{threadId}"),
            (HttpMethod.Get, $"/threads/{threadId}/runs"), (HttpMethod.Get, $"/threads/{threadId}/runs/{runId}"),
            (HttpMethod.Post, $"/threads/{threadId}/runs/{runId}/cancel"), (HttpMethod.Get, $"/threads/{threadId}/stream"),
            (HttpMethod.Get, $"/threads/{threadId}/runs/{runId}/stream"),
        })
        {
            var (status, body) = await other.SendJsonAsync(method, url);
            Assert.True(status == HttpStatusCode.NotFound, $"{method} {url}: {(int)status}");
            Assert.DoesNotContain("yes", body.GetRawText());
        }
        Assert.Equal(HttpStatusCode.NotFound, (await other.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = Lead })).Status);
        Assert.Empty((await other.OkJsonAsync(HttpMethod.Post, "/threads/search", new { })).EnumerateArray());
        // Neither the delete nor the cancel of the other organization did anything.
        Assert.Equal(HttpStatusCode.OK, (await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}")).Status);
    }

    [Fact]
    public async Task A_web_chat_thread_is_listed_and_readable_here_and_an_agent_server_thread_is_readable_by_web_chat_after_its_first_run()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var web = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId, metadata: new { source = "widget" })).GetProperty("id").GetString()!;
        await server.Client.SendAsync(web, "hi");
        var listed = await server.Client.OkJsonAsync(HttpMethod.Post, "/threads/search", new { metadata = new { source = "widget" } });
        Assert.Equal(web, Assert.Single(listed.EnumerateArray()).GetProperty("thread_id").GetString());
        var state = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{web}/state");
        Assert.Equal("hi", state.GetProperty("values").GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Equal("human", state.GetProperty("values").GetProperty("messages")[0].GetProperty("type").GetString());

        var threadId = await server.Client.CreateAgentServerThreadAsync();
        using var before = await server.Client.GetAsync($"/api/v1/threads/{threadId}");
        Assert.Equal(HttpStatusCode.Conflict, before.StatusCode);
        Assert.Contains("no agent", await before.Content.ReadAsStringAsync());
        var run = await server.Client.CreateRunAsync(threadId, "Lead qualifier");
        await server.Client.WaitForRunAsync(threadId, run.GetProperty("run_id").GetString()!, s => s == "success");
        var asWebChat = await server.Client.GetThreadAsync(threadId);
        Assert.Equal(Lead, asWebChat.GetProperty("agentId").GetString());
        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal("hi", history[0].GetProperty("messageBody").GetString());
        Assert.Equal("OUTBOUND", history[1].GetProperty("direction").GetString());
        // The web chat API goes on with the thread: the FLOW asked for a name.
        await server.Client.SendAsync(threadId, "Ada");
    }
}
