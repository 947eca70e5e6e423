using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using Parley.Server.Demo;
using Parley.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.Widget;

/// <summary>
/// The chat widget in Debian's Chromium against a real Parley on 127.0.0.1: the start page's widget holds the demo
/// conversation, shows history after a reload, survives a cut stream, shows HTML as text, and is refused on a
/// foreign origin and for a foreign thread.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class WidgetBrowserTests(BrowserFixture browser)
{
    private const string Greeting = "Hi! I'm Parley's demo assistant. I'll ask three quick questions so the right person can follow up.";

    static WidgetBrowserTests() => SetDefaultExpectTimeout(15_000);

    private static ILocator Messages(IPage page) => page.Locator(".log .msg .text");
    private static ILocator Input(IPage page) => page.GetByRole(AriaRole.Textbox, new() { Name = "Message" });

    private static async Task SayAsync(IPage page, string text)
    {
        await Input(page).FillAsync(text);
        await Input(page).PressAsync("Enter");
    }

    private static async Task<IPage> OpenStartPageAsync(BrowserFixture browser, Uri baseAddress, int width = 1280, int height = 800)
    {
        var page = await browser.NewPageAsync(width, height);
        await page.GotoAsync(baseAddress.ToString());
        await page.GetByRole(AriaRole.Button, new() { Name = "Open chat: Parley demo" }).ClickAsync();
        await Expect(Input(page)).ToBeFocusedAsync();
        return page;
    }

    [Fact]
    public async Task The_demo_conversation_is_held_by_typing_and_clicking_and_the_history_survives_reloads()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var page = await OpenStartPageAsync(browser, server.BaseAddress);

        await SayAsync(page, "hi");
        await Expect(Messages(page)).ToHaveTextAsync(["hi", Greeting, "What's your name?"]);
        await SayAsync(page, "Ada");
        await Expect(Messages(page)).ToHaveTextAsync(["hi", Greeting, "What's your name?", "Ada", "Thanks, Ada! What's your email address?"]);

        // A reload in the middle: the panel reopens with the whole history (without taking the page's focus), and the
        // conversation goes on.
        await page.ReloadAsync();
        await Expect(Messages(page)).ToHaveTextAsync(["hi", Greeting, "What's your name?", "Ada", "Thanks, Ada! What's your email address?"]);
        await Expect(Input(page)).Not.ToBeFocusedAsync();
        await SayAsync(page, "ada@example.com");
        await Expect(Messages(page).Last).ToHaveTextAsync("What can we help you with?");
        var replies = page.GetByRole(AriaRole.Group, new() { Name = "Suggested replies" }).GetByRole(AriaRole.Button);
        await Expect(replies).ToHaveTextAsync(["Sales", "Support", "Just browsing"]);
        if (Environment.GetEnvironmentVariable("PARLEY_WIDGET_SCREENSHOT") is { Length: > 0 } screenshot)
            await page.ScreenshotAsync(new() { Path = screenshot });

        await replies.GetByText("Sales").ClickAsync();
        await Expect(Messages(page).Last).ToHaveTextAsync("How many people are on your team?");
        await Expect(replies).ToHaveCountAsync(0);
        await SayAsync(page, "120");
        const string Goodbye = "Great, Ada! A team of 120 qualifies for a guided demo. Our sales team will email ada@example.com within one business day. Goodbye!";
        await Expect(Messages(page).Last).ToHaveTextAsync(Goodbye);
        await Expect(page.Locator(".log .note").Last).ToHaveTextAsync("This conversation has ended.");
        await Expect(Input(page)).ToBeHiddenAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Start a new conversation" })).ToBeVisibleAsync();

        string[] conversation = ["hi", Greeting, "What's your name?", "Ada", "Thanks, Ada! What's your email address?", "ada@example.com",
            "What can we help you with?", "Sales", "How many people are on your team?", "120", Goodbye];
        await page.ReloadAsync();
        await Expect(Messages(page)).ToHaveTextAsync(conversation);
        await Expect(page.Locator(".log .note").Last).ToHaveTextAsync("This conversation has ended.");

        // The server holds the same conversation, in a thread of the demo agent.
        var threadId = await page.EvaluateAsync<string>("() => JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith('parley:'))[1]).threadId");
        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal(conversation, history.Select(m => m.GetProperty("messageBody").GetString()));
        Assert.False((await server.Client.GetThreadAsync(threadId)).GetProperty("isActive").GetBoolean());
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_hand_off_an_operators_reply_and_the_closing_of_the_thread_show_in_the_widget()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var page = await OpenStartPageAsync(browser, server.BaseAddress);
        await page.EvaluateAsync("() => { window.parleyEvents = []; for (const name of ['handoff', 'closed', 'message']) document.addEventListener('parley:' + name, e => window.parleyEvents.push(name)); }");

        await SayAsync(page, "hi");
        await Expect(Messages(page).Last).ToHaveTextAsync("What's your name?");
        await SayAsync(page, "Ada");
        await Expect(Messages(page).Last).ToHaveTextAsync("Thanks, Ada! What's your email address?");
        await SayAsync(page, "ada@example.com");
        await page.GetByRole(AriaRole.Button, new() { Name = "Support" }).ClickAsync();
        await Expect(Messages(page).Last).ToHaveTextAsync("Thanks, Ada. I'm handing you over to a support engineer, who will reply here.");
        await Expect(page.Locator(".log .note").Last).ToHaveTextAsync("You are now talking with a person. They will answer here.");

        // A person answers and then closes the thread, through the secret-key API.
        var threadId = await page.EvaluateAsync<string>("() => JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith('parley:'))[1]).threadId");
        var operatorReply = await server.Client.PostAsJsonAsync($"/api/v1/threads/{threadId}/operator-messages", new { message = "Hello Ada, this is Sam from support." });
        Assert.Equal(System.Net.HttpStatusCode.OK, operatorReply.StatusCode);
        await Expect(Messages(page).Last).ToHaveTextAsync("Hello Ada, this is Sam from support.");
        Assert.Equal(System.Net.HttpStatusCode.OK, (await server.Client.PatchAsync($"/api/v1/threads/{threadId}/close", null)).StatusCode);
        await Expect(page.Locator(".log .note").Last).ToHaveTextAsync("This conversation has ended.");
        await Expect(Input(page)).ToBeHiddenAsync();
        var events = await page.EvaluateAsync<string[]>("() => window.parleyEvents");
        Assert.Contains("handoff", events);
        Assert.Equal("closed", events.Last());

        // Starting over forgets the closed thread.
        await page.GetByRole(AriaRole.Button, new() { Name = "Start a new conversation" }).ClickAsync();
        await Expect(Messages(page)).ToHaveCountAsync(0);
        await SayAsync(page, "hi again");
        await Expect(Messages(page).Last).ToHaveTextAsync("What's your name?");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_message_with_html_in_it_shows_as_text_and_nothing_runs()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var page = await OpenStartPageAsync(browser, server.BaseAddress);
        const string Html = "<img src=x onerror=\"window.__pwned=1\"><b>Ada</b>";

        await SayAsync(page, "hi");
        await Expect(Messages(page).Last).ToHaveTextAsync("What's your name?");
        await SayAsync(page, Html);
        await Expect(Messages(page).Last).ToHaveTextAsync($"Thanks, {Html}! What's your email address?");

        await Expect(Messages(page).Nth(3)).ToHaveTextAsync(Html);
        Assert.Equal(0, await page.Locator(".log img, .log b").CountAsync());
        Assert.True(await page.EvaluateAsync<bool>("() => window.__pwned === undefined"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_reply_whose_stream_is_cut_midway_is_completed_exactly_once()
    {
        await using var rig = await ModelRig.StartAsync();
        var agentId = Guid.NewGuid();
        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "assistant.yaml", $"""
            id: {agentId}
            name: Assistant
            mode: PROMPT
            model: test
            instructions: "Answer briefly."
            """);
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents,
            extraArgs: [.. rig.ModelArgs(timeoutSeconds: 30), $"--Parley:Demo:WidgetAgentId={agentId}"]);
        await using var proxy = new LoopbackProxy(server.BaseAddress);
        var pieces = Enumerable.Range(1, 40).Select(i => $"w{i:00} ").ToArray();
        var full = string.Concat(pieces);
        rig.Model.Enqueue(new TextReply(pieces, DelayMs: 150));

        var page = await OpenStartPageAsync(browser, proxy.BaseAddress);
        // Records every text the reply bubble shows, to prove no piece is ever shown twice, not only at the end.
        await page.EvaluateAsync("""
            () => {
              window.replyTexts = [];
              const log = document.querySelector('parley-widget').shadowRoot.querySelector('.log');
              new MutationObserver(() => log.querySelectorAll('.msg.out .text').forEach(t => window.replyTexts.push(t.textContent)))
                .observe(log, { subtree: true, childList: true, characterData: true });
              const typing = document.querySelector('parley-widget').shadowRoot.querySelector('.typing');
              window.typingShown = false;
              new MutationObserver(() => { if (!typing.hidden) window.typingShown = true; }).observe(typing, { attributes: true });
            }
            """);
        await SayAsync(page, "Tell me a story");
        var reply = page.Locator(".log .msg.out .text");
        await Expect(reply).ToContainTextAsync("w05 ");

        var partial = await reply.TextContentAsync();
        var before = proxy.Accepted;
        Assert.True(proxy.SeverAll() > 0);
        Assert.NotEqual(full, partial);

        await Expect(reply).ToHaveTextAsync(full.TrimEnd(), new() { Timeout = 20_000 });
        await Expect(page.Locator(".typing")).ToBeHiddenAsync();
        Assert.True(proxy.Accepted > before, "the widget did not reconnect");
        Assert.Equal(1, await page.Locator(".log .msg.out").CountAsync());
        var shown = await page.EvaluateAsync<string[]>("() => window.replyTexts");
        Assert.Contains(shown, text => text.Length > partial!.Length && text != full.TrimEnd());
        Assert.All(shown, text => Assert.StartsWith(text, full));
        Assert.True(await page.EvaluateAsync<bool>("() => window.typingShown"), "no typing indicator while the run was queued");
        Assert.Equal(["Tell me a story", full.TrimEnd()], (await Messages(page).AllTextContentsAsync()).Select(t => t.TrimEnd()));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_site_on_another_origin_chats_through_cors_with_its_own_key_and_its_css_cannot_break_the_widget()
    {
        await using var server = await ParleyTestServer.StartAsync();
        string? key = null;
        await using var site = await ForeignSite.StartAsync(() => $$"""
            <!doctype html><html><head><style>
              * { box-sizing: content-box !important; font-family: serif !important; }
              button, li, ol, textarea, section { color: red !important; font-size: 40px !important; display: inline !important; }
              div { display: none !important; }
            </style></head><body><h1>Shop</h1>
            <script src="{{server.BaseAddress}}widget.js" data-key="{{key}}" data-title="Shop help" data-color="rgb(10, 120, 80)" data-position="left"></script>
            </body></html>
            """);
        var created = await server.Client.PostAsJsonAsync("/api/v1/publishable-keys",
            new { agentId = ParleyTestServer.LeadQualifierId, allowedOrigins = new[] { site.Url.TrimEnd('/') }, name = "shop" });
        key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("publishableKey").GetProperty("key").GetString();

        var page = await browser.NewPageAsync();
        await page.GotoAsync(site.Url);
        var launcher = page.GetByRole(AriaRole.Button, new() { Name = "Open chat: Shop help" });
        var box = await launcher.BoundingBoxAsync();
        Assert.Equal((20f, 56f), ((float)box!.X, (float)box.Width));
        Assert.Equal("rgb(10, 120, 80)", await launcher.EvaluateAsync<string>("b => getComputedStyle(b).backgroundColor"));
        await launcher.ClickAsync();
        await Expect(page.GetByRole(AriaRole.Dialog, new() { Name = "Shop help" })).ToBeVisibleAsync();
        Assert.Equal("15px", await Input(page).EvaluateAsync<string>("t => getComputedStyle(t).fontSize"));

        await SayAsync(page, "hi");
        await Expect(Messages(page)).ToHaveTextAsync(["hi", Greeting, "What's your name?"]);
        await page.ReloadAsync();
        await Expect(Messages(page)).ToHaveTextAsync(["hi", Greeting, "What's your name?"]);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_page_on_a_foreign_origin_is_refused_and_nothing_is_written()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = server.Services.GetRequiredService<ParleyStartup>().DemoPublishableKey!.Key;
        await using var foreign = await ForeignSite.StartAsync(() => $"""
            <!doctype html><html><body><h1>Another site</h1>
            <script src="{server.BaseAddress}widget.js" data-key="{key}" data-title="Stolen"></script></body></html>
            """);
        var page = await browser.NewPageAsync();
        await page.AddInitScriptAsync("document.addEventListener('parley:error', e => (window.parleyErrors = window.parleyErrors || []).push(e.detail))");
        await page.GotoAsync(foreign.Url);
        await page.GetByRole(AriaRole.Button, new() { Name = "Open chat: Stolen" }).ClickAsync();
        await SayAsync(page, "hi");

        await Expect(page.Locator(".status")).ToHaveTextAsync("Could not reach the chat server.");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Not sent. Retry" })).ToBeVisibleAsync();
        Assert.True(await page.EvaluateAsync<int>("() => window.parleyErrors.length") >= 1);
        Assert.Equal(0, server.CountRows().Threads);

        // The same request outside a browser, where CORS does not apply, is refused by the server itself.
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/threads/web?publishableKey={key}") { Content = JsonContent.Create(new { }) };
        request.Headers.Add("Origin", foreign.Url.TrimEnd('/'));
        using var response = await server.CreateClient(null).SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(0, server.CountRows().Threads);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_stored_thread_the_key_did_not_create_is_refused_and_its_history_stays_hidden()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = server.Services.GetRequiredService<ParleyStartup>().DemoPublishableKey!.Key;
        var foreignThread = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await server.Client.SendAsync(foreignThread, "my secret order number is 4711");
        var origin = server.BaseAddress.ToString().TrimEnd('/');
        var stored = JsonSerializer.Serialize(new { threadId = foreignThread, threadToken = "tt_" + new string('A', 43), open = true });

        var page = await browser.NewPageAsync();
        await page.AddInitScriptAsync($"localStorage.setItem({JsonSerializer.Serialize($"parley:{origin}:{key}")}, {JsonSerializer.Serialize(stored)})");
        await page.GotoAsync(server.BaseAddress.ToString());

        await Expect(page.Locator(".status")).ToContainTextAsync("This conversation is no longer available.");
        Assert.Equal(0, await Messages(page).CountAsync());
        Assert.DoesNotContain("4711", await page.Locator("parley-widget").InnerTextAsync());

        // The widget starts over with a thread of its own.
        await SayAsync(page, "hi");
        await Expect(Messages(page).Last).ToHaveTextAsync("What's your name?");
        var own = await page.EvaluateAsync<string>("() => JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith('parley:'))[1]).threadId");
        Assert.NotEqual(foreignThread, own);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_widget_works_by_keyboard_and_fills_a_phone_sized_screen()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var page = await browser.NewPageAsync(375, 667);
        await page.GotoAsync(server.BaseAddress.ToString());
        var launcher = page.GetByRole(AriaRole.Button, new() { Name = "Open chat: Parley demo" });
        await Expect(launcher).ToHaveAttributeAsync("aria-expanded", "false");

        await launcher.FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        var dialog = page.GetByRole(AriaRole.Dialog, new() { Name = "Parley demo" });
        await Expect(dialog).ToBeVisibleAsync();
        await Expect(Input(page)).ToBeFocusedAsync();
        await Expect(page.GetByRole(AriaRole.Log)).ToHaveAttributeAsync("aria-live", "polite");
        var box = await dialog.BoundingBoxAsync();
        Assert.Equal((0f, 0f, 375f, 667f), ((float)box!.X, (float)box.Y, (float)box.Width, (float)box.Height));

        await page.Keyboard.TypeAsync("hi");
        await page.Keyboard.PressAsync("Enter");
        await Expect(Messages(page).Last).ToHaveTextAsync("What's your name?");

        await page.Keyboard.PressAsync("Escape");
        await Expect(dialog).ToBeHiddenAsync();
        var reopen = page.GetByRole(AriaRole.Button, new() { Name = "Open chat: Parley demo" });
        await Expect(reopen).ToBeFocusedAsync();
        await Expect(reopen).ToHaveAttributeAsync("aria-expanded", "false");
        await page.Context.CloseAsync();
    }

    /// <summary>A page on another origin (another port of 127.0.0.1) that embeds the widget.</summary>
    private sealed class ForeignSite : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private ForeignSite(WebApplication app, string url) { _app = app; Url = url; }
        public string Url { get; }

        public static async Task<ForeignSite> StartAsync(Func<string> html)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            app.MapGet("/", () => Results.Content(html(), "text/html; charset=utf-8"));
            await app.StartAsync();
            return new ForeignSite(app, app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
