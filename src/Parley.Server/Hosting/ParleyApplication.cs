using Microsoft.AspNetCore.Http.Features;
using Parley.Core;
using Parley.Server.Auth;
using Parley.Server.ChatStream;
using Parley.Server.Demo;
using Parley.Server.Streaming;
using Parley.Server.WebChat;
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
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddParley(builder.Configuration);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapParley();
        return app;
    }

    /// <summary>Registers Parley's services: core, the SQLite store, authentication, JSON, OpenAPI and the demo.</summary>
    public static IServiceCollection AddParley(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddParleyCore();
        services.AddSqliteStore(o => o.ConnectionString = configuration.GetConnectionString("Parley") ?? "Data Source=parley.db");
        services.AddOptions<StreamingOptions>().BindConfiguration("Parley:Streaming")
            .Validate(o => o.HeartbeatSeconds > 0, "Parley:Streaming:HeartbeatSeconds must be positive.").ValidateOnStart();
        services.AddOptions<RequestLimitOptions>().BindConfiguration("Parley:Limits")
            .Validate(o => o.MaxRequestBodyBytes > 0 && o.MaxMessageLength > 0, "Parley:Limits values must be positive.").ValidateOnStart();
        services.AddOptions<DemoOptions>().BindConfiguration("Parley:Demo");
        services.AddOptions<AgentFileOptions>().BindConfiguration("Parley:Agents");
        services.AddApiKeyAuthentication();
        services.AddParleyRateLimiting();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, WebChatJsonContext.Default);
            // Bodies are JSON, never inlined into HTML: keep apostrophes and the like readable.
            o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        });
        services.AddProblemDetails();
        services.AddExceptionHandler<ParleyExceptionHandler>();
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Parley API";
            document.Info.Description = "Web chat threads with live SSE streams. Authenticate with the X-API-Key header.";
            return Task.CompletedTask;
        }));
        services.AddHealthChecks();
        if (configuration.GetValue<bool>("Parley:Metrics:Prometheus"))
            services.AddOpenTelemetry().WithMetrics(metrics => metrics
                .AddMeter(Parley.Core.Diagnostics.ParleyMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime")
                .AddPrometheusExporter());
        services.AddSingleton<ParleyStartup>();
        services.AddHostedService(sp => sp.GetRequiredService<ParleyStartup>());
        services.AddHostedService<AgentFileWatcher>();
        return services;
    }

    /// <summary>Adds the middleware and maps every endpoint.</summary>
    public static WebApplication MapParley(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(WebChatErrors.WriteStatusCodePageAsync);
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapOpenApi();
        app.MapScalarApiReference("/docs", o => o.WithTitle("Parley API reference").WithOpenApiRoutePattern("/openapi/{documentName}.json"));
        app.MapHealthChecks("/healthz");
        if (app.Configuration.GetValue<bool>("Parley:Metrics:Prometheus"))
            app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/", StartPage.Render).ExcludeFromDescription();
        app.MapWebChatThreads();
        app.MapWebChatAgents();
        app.MapWebChatUsage();
        app.MapChatStream();
        return app;
    }
}
