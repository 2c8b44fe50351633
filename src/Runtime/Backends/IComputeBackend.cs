using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Backends;

/// <summary>
/// Where the transformer runs. A backend holds the model's weights in its own memory (uploaded once)
/// and creates sessions; it is shared by all sessions of a model and must be thread-safe for that.
/// </summary>
public interface IComputeBackend : IDisposable
{
    string Name { get; }

    /// <param name="capacity">positions the session's KV cache holds (allocated once, here)</param>
    /// <param name="maxRows">the most rows one <see cref="IBackendSession.Forward"/> call will feed</param>
    /// <param name="maxLogitRows">the most rows of logits one call will ask for (the block size)</param>
    /// <param name="threads">CPU threads the session may use</param>
    IBackendSession CreateSession(int capacity, int maxRows, int maxLogitRows, int threads);
}

/// <summary>
/// One stream's device state: its KV cache, activations and logits. Not thread-safe; one call at a time.
/// </summary>
public interface IBackendSession : IDisposable
{
    int Capacity { get; }
    /// <summary>Positions already in the cache; the next fed row gets this position.</summary>
    int Length { get; }
    /// <summary>Rows of logits the last <see cref="Forward"/> produced.</summary>
    int LogitRows { get; }

    /// <summary>
    /// Managed bytes allocated so far by threads the session owns (not the caller's), for allocation checks;
    /// null when the backend's work runs on threads it cannot count (ILGPU's).
    /// </summary>
    long? OwnThreadsAllocatedBytes { get; }

    /// <summary>Empties the cache (no memory is released).</summary>
    void Reset();

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions Length.., appends their keys and values to the cache
    /// (one block per call), and computes logits of the last <paramref name="logitRows"/> rows.
    /// Row r (absolute position i) reads keys [0, mask.KeyEnd(i, Length + rows)).
    /// </summary>
    void Forward(ReadOnlySpan<int> tokens, AttentionMask mask, int logitRows);

    /// <summary>Samples one token per logits row, row r with CounterRandom.Uniform(seed, step, r).</summary>
    void Sample(in SamplingSettings settings, ulong seed, int step, Span<int> destination);

    /// <summary>Copies the logits of the last Forward, [LogitRows, vocab], to the host.</summary>
    void CopyLogits(Span<float> destination);
}
