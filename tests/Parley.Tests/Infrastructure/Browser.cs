using Microsoft.Playwright;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// Debian's Chromium driven by Playwright (never Playwright's own browser download), launched once for the browser
/// test collection. When /usr/bin/chromium is missing, every browser test skips with a message that says so
/// (<c>.ci/run</c> installs it from .ci/apt-packages).
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ChromiumPath)) return;
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
            Timeout = 60_000,
        });
    }

    /// <summary>The browser, or a skip with a clear message when Chromium is not installed.</summary>
    public IBrowser Browser
    {
        get
        {
            if (_browser is null) Assert.Skip($"Browser test skipped: Chromium is not installed at {ChromiumPath} (apt-get install chromium; .ci/run installs it from .ci/apt-packages).");
            return _browser;
        }
    }

    /// <summary>A fresh context (own localStorage and cache) and page; the page times out after 15 s per action.</summary>
    public async Task<IPage> NewPageAsync(int width = 1280, int height = 800)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(15_000);
        return page;
    }

    public async ValueTask DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        _playwright?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "Browser";
}
