namespace Parley.Core.Agents.Flow;

/// <summary>The flow cannot go on (a loop without an ask, a failed webhook with no <c>onError</c>, a branch with no way out). Fails the run.</summary>
public sealed class FlowExecutionException(string message, Exception? inner = null) : Exception(message, inner);
