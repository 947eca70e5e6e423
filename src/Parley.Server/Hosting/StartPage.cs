namespace Parley.Server.Hosting;

/// <summary>The page at <c>/</c>: what this server is and where to go next.</summary>
internal static class StartPage
{
    public static IResult Render() => TypedResults.Content("""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Parley</title>
        <style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style>
        </head><body>
        <h1>Parley</h1>
        <p>A self-hosted server for AI chat agents: create a thread with an agent, post messages, and receive the
        agent's replies as a Server-Sent Events stream that resumes with <code>Last-Event-ID</code>.</p>
        <ul>
          <li><a href="/docs">API reference</a> (<a href="/openapi/v1.json">OpenAPI document</a>)</li>
          <li><a href="/healthz">Health</a></li>
        </ul>
        <p>The demo API key and agent ids are printed in the server's console at start.</p>
        </body></html>
        """, "text/html; charset=utf-8");
}
