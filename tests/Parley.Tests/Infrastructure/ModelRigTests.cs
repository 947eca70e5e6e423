namespace Parley.Tests.Infrastructure;

/// <summary>Base of test classes that need a <see cref="ModelRig"/> (a scripted model and a webhook receiver) per test.</summary>
public abstract class ModelRigTests : IAsyncLifetime
{
    protected ModelRig Rig { get; private set; } = null!;
    protected Guid AgentId { get; } = Guid.NewGuid();
    protected ScriptedOpenAIServer Model => Rig.Model;
    protected SignedWebhookReceiver Webhook => Rig.Webhook;

    public async ValueTask InitializeAsync() => Rig = await ModelRig.StartAsync();
    public async ValueTask DisposeAsync() => await Rig.DisposeAsync();
}
