using Microsoft.AspNetCore.Http.Features;
using Parley.Core;
using Parley.Server.AgentServer;
using Parley.Server.Auth;
using Parley.Server.ChatStream;
using Parley.Server.Demo;
using Parley.Server.Streaming;
using Parley.Server.WebChat;
using Parley.Backplane.Redis;
using Parley.Storage.Postgres;
using Parley.Server.Widget;
using Parley.Storage.Sqlite;
using OpenTelemetry.Metrics;
using Scalar.AspNetCore;

namespace Parley.Server.Hosting;

/// <summary>Builds the Parley web application: services, middleware and every dialect's endpoints.</summary>
public static class ParleyApplication
{
    /// <summary>
    /// Builds the app from command-line <paramref name="args"/> (as any ASP.NET Core app: <c>--urls</c>,
    /// <c>--ConnectionStrings:Parley=...</c>, ...). <paramref name="configure"/> lets a test host add configuration or
    /// replace services before the app is built.
    /// </summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings*.json are read once at start, not watched: ASP.NET Core's watcher covers the whole content root
        // (the working folder, where parley.db lives by default), so it woke for every database write — 7 % of the
        // server's CPU under load in a perf profile (docs/benchmarks.md). `--hostBuilder:reloadConfigOnChange=true`
        // (a later argument wins) or the DOTNET_hostBuilder__reloadConfigOnChange variable turns watching back on.
        var builder = WebApplication.CreateBuilder(Environment.GetEnvironmentVariable("DOTNET_hostBuilder__reloadConfigOnChange") is null
            ? ["--hostBuilder:reloadConfigOnChange=false", .. args]
            : args);
        builder.Services.AddParley(builder.Configuration);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapParley();
        return app;
    }

    /// <summary>Registers Parley's services: core, the store (SQLite, or PostgreSQL and Redis when configured), authentication, JSON, OpenAPI and the demo.</summary>
    public static IServiceCollection AddParley(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddParleyCore();
        // Scale-out (docs/operations.md): a PostgreSQL connection string switches the store and run leases to
        // PostgreSQL, a Redis one the live fan-out to Redis; without them Parley is one node on SQLite.
        if (configuration.GetConnectionString("Postgres") is { } postgres)
            services.AddPostgresStore(o =>
            {
                o.ConnectionString = postgres;
                configuration.GetSection("Parley:Runs").Bind(o);
                if (configuration["Parley:Cluster:NodeId"] is { Length: > 0 } node) o.NodeId = node;
            });
        else
            services.AddSqliteStore(o =>
            {
                configuration.GetSection("Parley:Sqlite").Bind(o);
                o.ConnectionString = configuration.GetConnectionString("Parley") ?? "Data Source=parley.db";
            });
        if (configuration.GetConnectionString("Redis") is { } redis)
            services.AddRedisBackplane(o =>
            {
                o.Configuration = redis;
                configuration.GetSection("Parley:Redis").Bind(o);
            });
        services.AddOptions<StreamingOptions>().BindConfiguration("Parley:Streaming")
            .Validate(o => o.HeartbeatSeconds > 0, "Parley:Streaming:HeartbeatSeconds must be positive.").ValidateOnStart();
        services.AddOptions<RequestLimitOptions>().BindConfiguration("Parley:Limits")
            .Validate(o => o.MaxRequestBodyBytes > 0 && o.MaxMessageLength > 0, "Parley:Limits values must be positive.").ValidateOnStart();
        services.AddOptions<DemoOptions>().BindConfiguration("Parley:Demo");
        services.AddOptions<AgentFileOptions>().BindConfiguration("Parley:Agents");
        services.AddApiKeyAuthentication();
        services.AddPublishableKeyAuthentication();
        services.AddParleyRateLimiting();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, WebChatJsonContext.Default);
            o.SerializerOptions.TypeInfoResolverChain.Insert(1, WidgetJsonContext.Default);
            // Bodies are JSON, never inlined into HTML: keep apostrophes and the like readable.
            o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        });
        // No per-request Activity and logging scope unless request logs are on (HostingDiagnostics).
        services.PostConfigure<Microsoft.Extensions.Logging.LoggerFilterOptions>(HostingDiagnostics.TurnOffWhenSilent);
        services.AddProblemDetails();
        services.AddExceptionHandler<ParleyExceptionHandler>();
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Parley API";
            document.Info.Description = "Web chat threads with live SSE streams, the chat-stream API and the agent-server API (assistants, threads, runs). Authenticate with the X-API-Key header.";
            return Task.CompletedTask;
        }));
        var health = services.AddHealthChecks();
        // A node is unhealthy without its database; without Redis it still serves every call correctly (streams fall
        // back to the store on heartbeats), only with more latency: degraded, so a load balancer keeps it.
        if (configuration.GetConnectionString("Postgres") is not null) health.AddCheck<PostgresHealthCheck>("postgres");
        if (configuration.GetConnectionString("Redis") is not null) health.AddCheck<RedisHealthCheck>("redis");
        if (configuration.GetValue<bool>("Parley:Metrics:Prometheus"))
            services.AddOpenTelemetry().WithMetrics(metrics => metrics
                .AddMeter(Parley.Core.Diagnostics.ParleyMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.MemoryPool", "System.Runtime")
                .AddPrometheusExporter());
        services.AddSingleton<ParleyStartup>();
        services.AddHostedService(sp => sp.GetRequiredService<ParleyStartup>());
        services.AddHostedService<AgentFileWatcher>();
        services.AddOptions<MemoryOptions>().BindConfiguration("Parley:Memory")
            .Validate(o => o.IdleSeconds > 0, "Parley:Memory:IdleSeconds must be positive.").ValidateOnStart();
        services.AddHostedService<IdleMemoryTrimmer>();
        return services;
    }

    /// <summary>Adds the middleware and maps every endpoint.</summary>
    public static WebApplication MapParley(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(context => AgentServerErrors.Owns(context.HttpContext)
            ? AgentServerErrors.WriteStatusCodePageAsync(context.HttpContext)
            : WebChatErrors.WriteStatusCodePageAsync(context));
        app.UseCors();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapOpenApi();
        app.MapScalarApiReference("/docs", o => o.WithTitle("Parley API reference").WithOpenApiRoutePattern("/openapi/{documentName}.json"));
        app.MapHealthChecks("/healthz");
        if (app.Configuration.GetValue<bool>("Parley:Metrics:Prometheus"))
            app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/", StartPage.Render).ExcludeFromDescription();
        app.MapWidget();
        app.MapPublishableKeys();
        app.MapWebChatThreads();
        app.MapWebChatAgents();
        app.MapWebChatUsage();
        app.MapChatStream();
        app.MapAgentServer();
        return app;
    }
}
