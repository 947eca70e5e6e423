using System.Diagnostics;
using System.Text.Json;
using Parley.Tests.Infrastructure;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.AgentServer;

/// <summary>
/// The official JavaScript client of the agent-server API (<c>@langchain/langgraph-sdk</c>, pinned in
/// tests/agent-server-js/package-lock.json and installed by .ci/run with <c>npm ci</c>) drives Parley unchanged:
/// tests/agent-server-js/e2e.mjs creates a thread, streams a run with values and messages-tuple, joins the thread stream
/// with a lastEventId and cancels a run; this test asserts what the client received.
/// </summary>
public sealed class AgentServerSdkTests : ModelRigTests
{
    [Fact]
    public async Task The_langgraph_sdk_creates_a_thread_streams_a_run_joins_the_thread_stream_and_cancels_a_run()
    {
        var node = FindOnPath("node");
        if (node is null) Assert.Skip("node is not installed: the @langchain/langgraph-sdk end-to-end test cannot run here (CI installs it).");
        var folder = FindScriptFolder();
        if (folder is null)
            Assert.Skip("tests/agent-server-js/node_modules/@langchain/langgraph-sdk is missing: run `npm ci` in tests/agent-server-js (.ci/run does).");

        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "story.yaml", AgentServerClient.PromptAgent(AgentId));
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs: Rig.ModelArgs(timeoutSeconds: 30));
        Model.Enqueue(
            new TextReply(["Hel", "lo ", "from ", "Parley"]),
            new TextReply([.. Enumerable.Range(0, 200).Select(i => $"s{i} ")], DelayMs: 100));

        var start = new ProcessStartInfo(node, [Path.Combine(folder, "e2e.mjs"), server.BaseAddress.ToString().TrimEnd('/'), ParleyTestServer.DemoKey, AgentId.ToString("D")])
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }
        Assert.True(process.ExitCode == 0, $"node exited with {process.ExitCode}: {await errors}\n{await output}");

        var result = JsonDocument.Parse((await output).Trim().Split('\n')[^1]).RootElement;
        Assert.Contains(AgentId.ToString("D"), result.GetProperty("assistantIds").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal("idle", result.GetProperty("thread").GetProperty("status").GetString());
        Assert.Equal("sdk-e2e", result.GetProperty("thread").GetProperty("metadata").GetProperty("purpose").GetString());

        // The streamed run, as the SDK parsed it: metadata first, input values, one messages event per token, final values.
        var streamed = result.GetProperty("streamed").EnumerateArray().ToList();
        Assert.Equal(["metadata", "values", "messages", "messages", "messages", "messages", "values"], streamed.Select(e => e.GetProperty("event").GetString()));
        var runId = streamed[0].GetProperty("data").GetProperty("run_id").GetString();
        Assert.Equal(runId, result.GetProperty("onRunCreated").GetProperty("run_id").GetString());
        Assert.Equal(["Hel", "lo ", "from ", "Parley"],
            streamed.Where(e => e.GetProperty("event").GetString() == "messages").Select(e => e.GetProperty("data")[0].GetProperty("content").GetString()));
        Assert.Equal("Hello from Parley", streamed[^1].GetProperty("data").GetProperty("messages")[1].GetProperty("content").GetString());
        Assert.All(streamed, e => Assert.False(string.IsNullOrEmpty(e.GetProperty("id").GetString())));

        // The thread stream joined after the run's second event: the rest of the run with the same ids and data, then end.
        var joined = result.GetProperty("joined").EnumerateArray().ToList();
        Assert.Equal(streamed[1].GetProperty("id").GetString(), result.GetProperty("resumeAfter").GetString());
        Assert.Equal("end", joined[^1].GetProperty("event").GetString());
        Assert.Equal("success", joined[^1].GetProperty("data").GetProperty("status").GetString());
        var runModes = joined.Where(e => e.GetProperty("event").GetString() is "values" or "messages").ToList();
        Assert.Equal(streamed.Skip(2).Select(e => (e.GetProperty("id").GetString(), e.GetProperty("data").GetRawText())),
            runModes.Select(e => (e.GetProperty("id").GetString(), e.GetProperty("data").GetRawText())));
        Assert.Equal(["messages", "messages", "messages", "messages", "updates", "values", "end"], joined.Select(e => e.GetProperty("event").GetString()));

        // The background run, cancelled while it ran.
        Assert.Equal("pending", result.GetProperty("backgroundStatus").GetString());
        Assert.Equal("running", result.GetProperty("statusBeforeCancel").GetString());
        Assert.Equal("interrupted", result.GetProperty("cancelled").GetProperty("status").GetString());
        Assert.Equal("interrupted", result.GetProperty("threadAfterCancel").GetString());
        Assert.Equal(["interrupted", "success"], result.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("status").GetString()));
        Assert.Equal(["hi", "Hello from Parley", "tell me a long story"],
            result.GetProperty("state").GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()));
        Assert.Equal("404", result.GetProperty("unknownThread").GetString());
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    /// <summary>tests/agent-server-js, found from the test binaries upwards, when its packages are installed.</summary>
    private static string? FindScriptFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var folder = Path.Combine(dir.FullName, "tests", "agent-server-js");
            if (File.Exists(Path.Combine(folder, "e2e.mjs")))
                return Directory.Exists(Path.Combine(folder, "node_modules", "@langchain", "langgraph-sdk")) ? folder : null;
        }
        return null;
    }
}
