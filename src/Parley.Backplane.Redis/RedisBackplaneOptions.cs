namespace Parley.Backplane.Redis;

/// <summary>Options of the Redis backplane (<c>ConnectionStrings:Redis</c>, <c>Parley:Redis</c>).</summary>
public sealed class RedisBackplaneOptions
{
    /// <summary>A StackExchange.Redis configuration string, for example <c>redis:6379,password=...</c>. Required.</summary>
    public string Configuration { get; set; } = "";

    /// <summary>Prefix of the pub/sub channel names (<c>Parley:Redis:ChannelPrefix</c>, default <c>parley</c>): lets several clusters share one Redis.</summary>
    public string ChannelPrefix { get; set; } = "parley";
}
