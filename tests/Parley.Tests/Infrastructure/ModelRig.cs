namespace Parley.Tests.Infrastructure;

/// <summary>
/// What model-backed tests need around Parley: a scripted OpenAI-compatible server, a webhook receiver that checks
/// signatures, and the webhook secret in a uniquely named environment variable.
/// </summary>
public sealed class ModelRig : IAsyncDisposable
{
    private ModelRig(ScriptedOpenAIServer model, SignedWebhookReceiver webhook)
    {
        Model = model;
        Webhook = webhook;
        Environment.SetEnvironmentVariable(SecretVariable, webhook.Secret);
    }

    public ScriptedOpenAIServer Model { get; }
    public SignedWebhookReceiver Webhook { get; }
    public string SecretVariable { get; } = "PARLEY_TEST_SECRET_" + Guid.NewGuid().ToString("N");

    public static async Task<ModelRig> StartAsync() =>
        new(await ScriptedOpenAIServer.StartAsync(), await SignedWebhookReceiver.StartAsync());

    /// <summary>Command-line arguments that configure model <c>test</c> against the scripted server.</summary>
    public string[] ModelArgs(int retries = 0, double timeoutSeconds = 5, int contextTokens = 8000, string? endpoint = null) =>
    [
        "--Parley:Models:test:Provider=openai",
        $"--Parley:Models:test:Endpoint={endpoint ?? Model.Endpoint}",
        "--Parley:Models:test:Model=gpt-test",
        $"--Parley:Models:test:MaxRetries={retries}",
        "--Parley:Models:test:RetryDelayMs=50",
        $"--Parley:Models:test:TimeoutSeconds={timeoutSeconds}",
        $"--Parley:Models:test:ContextTokens={contextTokens}",
    ];

    public async ValueTask DisposeAsync()
    {
        Environment.SetEnvironmentVariable(SecretVariable, null);
        await Webhook.DisposeAsync();
        await Model.DisposeAsync();
    }
}
