namespace Parley.Core.Models;

/// <summary>An agent names a model that is not configured, or whose configuration cannot be used (missing key, bad endpoint).</summary>
public sealed class ModelNotAvailableException(string message) : Exception(message);
