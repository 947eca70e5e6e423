using System.Net;
using Parley.Server.Demo;
using Parley.Server.Widget;

namespace Parley.Server.Hosting;

/// <summary>
/// The page at <c>/</c>: what this server is, where to go next, and — when the demo is on — the chat widget talking to
/// the demo agent with the demo publishable key, so starting the server ends with a chat in the browser.
/// </summary>
internal static class StartPage
{
    public static IResult Render(ParleyStartup startup)
    {
        var key = startup.DemoPublishableKey;
        var widget = key is null
            ? "<p>The demo is off (<code>Parley:Demo:Enabled=false</code>) or has no agent, so this page shows no chat.</p>"
            : $"""
              <p>The chat in the corner is Parley's widget (<code>/widget.js</code>) talking to the demo agent. It was added
              to this page with one tag:</p>
              <pre><code>{Html($"""<script src="/widget.js" data-key="{key.Key}" data-title="Parley demo" async></script>""")}</code></pre>
              <p>The <code>pub_</code> key is a <em>publishable</em> key: safe in a web page, bound to one agent and to the
              origins it lists; the secret API key printed at start stays on servers.</p>
              <script src="{WidgetApi.ScriptPath}" data-key="{Html(key.Key)}" data-title="Parley demo" data-greeting="Hi! Say hello to start the demo conversation." async></script>
              """;
        var page = $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Parley</title>
            <style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
            code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}pre{background:#f3f3f3;padding:.75rem;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}pre code{padding:0}</style>
            </head><body>
            <main>
            <h1>Parley</h1>
            <p>A self-hosted server for AI chat agents: create a thread with an agent, post messages, and receive the
            agent's replies as a Server-Sent Events stream that resumes with <code>Last-Event-ID</code>.</p>
            {{widget}}
            <ul>
              <li><a href="/docs">API reference</a> (<a href="/openapi/v1.json">OpenAPI document</a>)</li>
              <li><a href="/healthz">Health</a></li>
            </ul>
            <p>The demo API key and agent ids are printed in the server's console at start.</p>
            </main>
            </body></html>
            """;
        return TypedResults.Content(page, "text/html; charset=utf-8");
    }

    private static string Html(string text) => WebUtility.HtmlEncode(text);
}
