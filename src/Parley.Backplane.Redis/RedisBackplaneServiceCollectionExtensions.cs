using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Core.Events;

namespace Parley.Backplane.Redis;

/// <summary>Registers the Redis backplane.</summary>
public static class RedisBackplaneServiceCollectionExtensions
{
    /// <summary>
    /// Replaces the in-process <see cref="IThreadEventBus"/> with <see cref="RedisThreadEventBus"/> (as SignalR's
    /// <c>AddStackExchangeRedis()</c> replaces its default), and makes idle streams check the store on each heartbeat
    /// so an event whose pub/sub message was lost still arrives. A missing configuration fails the start with a message.
    /// </summary>
    public static IServiceCollection AddRedisBackplane(this IServiceCollection services, Action<RedisBackplaneOptions>? configure = null)
    {
        var options = services.AddOptions<RedisBackplaneOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o => !string.IsNullOrWhiteSpace(o.Configuration), "ConnectionStrings:Redis must not be empty.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.ChannelPrefix), "Parley:Redis:ChannelPrefix must not be empty.")
            .ValidateOnStart();
        services.TryAddSingleton<RedisThreadEventBus>();
        services.RemoveAll<IThreadEventBus>().AddSingleton<IThreadEventBus>(sp => sp.GetRequiredService<RedisThreadEventBus>());
        services.Configure<ThreadEventReaderOptions>(o => o.CheckStoreWhenIdle = true);
        return services;
    }
}
