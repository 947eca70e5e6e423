using System.Reflection;
using System.Runtime.ExceptionServices;
using Parley.Core.Storage;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// An <see cref="IThreadStore"/> that passes every call to the real store but fails one write: the
/// <c>failAt</c>-th <see cref="WritePriority.Bulk"/> <c>UpdateThreadAsync</c> (a streaming run's output after its first
/// write) throws an <see cref="IOException"/> without calling the store, as a write the disk refused. A
/// <see cref="DispatchProxy"/>, so it stays complete as the interface grows.
/// </summary>
public class FailingWriteStore : DispatchProxy
{
    private IThreadStore _inner = null!;
    private int _failAt;
    private int _bulkWrites;

    /// <summary>The message of the exception the failed write throws.</summary>
    public const string Failure = "the disk refused the write";

    /// <summary>Wraps <paramref name="inner"/>; its <paramref name="failAt"/>-th bulk write (1-based) fails.</summary>
    public static IThreadStore Wrap(IThreadStore inner, int failAt)
    {
        var store = Create<IThreadStore, FailingWriteStore>();
        var proxy = (FailingWriteStore)(object)store;
        proxy._inner = inner;
        proxy._failAt = failAt;
        return store;
    }

    /// <inheritdoc />
    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (targetMethod.Name == nameof(IThreadStore.UpdateThreadAsync) && args is { Length: 4 } && args[2] is WritePriority.Bulk
            && Interlocked.Increment(ref _bulkWrites) == _failAt)
        {
            var fromException = typeof(Task).GetMethods().Single(m => m.Name == nameof(Task.FromException) && m.IsGenericMethod)
                .MakeGenericMethod(targetMethod.ReturnType.GetGenericArguments()[0]);
            return fromException.Invoke(null, [new IOException(Failure)]);
        }
        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(ex.InnerException);
            throw;
        }
    }
}
