using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Runtime.Backends;

/// <summary>
/// Where the transformer runs. A backend holds the model's weights in its own memory (uploaded once)
/// and creates sessions; it is shared by all sessions of a model and must be thread-safe for that.
/// </summary>
public interface IComputeBackend : IDisposable
{
    string Name { get; }

    /// <param name="sequences">sequences the session runs side by side, each with its own KV cache</param>
    /// <param name="capacity">positions each sequence's KV cache holds (allocated once, here)</param>
    /// <param name="maxRows">the most rows one <see cref="IBackendSession.Forward"/> call will feed, all sequences together</param>
    /// <param name="maxLogitRows">the most rows of logits one call will ask for, all sequences together</param>
    /// <param name="threads">CPU threads the session may use</param>
    IBackendSession CreateSession(int sequences, int capacity, int maxRows, int maxLogitRows, int threads);
}

/// <summary>
/// Device state of one or more sequences: a KV cache per sequence, shared activations and logits. A forward call feeds
/// any subset of the sequences at once, so a step streams each weight matrix once for all of them. Not thread-safe;
/// one call at a time.
/// <para>Batch invariance: a sequence's logits depend only on its own tokens, never on which other sequences share the
/// call or on their row counts (every reduction runs in an order fixed by the sequence's own feed).</para>
/// </summary>
public interface IBackendSession : IDisposable
{
    int Sequences { get; }
    /// <summary>Positions each sequence's cache holds.</summary>
    int Capacity { get; }
    /// <summary>Positions already in <paramref name="sequence"/>'s cache; its next fed row gets this position.</summary>
    int LengthOf(int sequence);
    /// <summary>Rows of logits the last <see cref="Forward"/> produced for <paramref name="sequence"/> (0 if it was not fed).</summary>
    int LogitRowsOf(int sequence);

    /// <summary>
    /// Managed bytes allocated so far by threads the session owns (not the caller's), for allocation checks;
    /// null when the backend's work runs on threads it cannot count (ILGPU's).
    /// </summary>
    long? OwnThreadsAllocatedBytes { get; }

    /// <summary>Empties <paramref name="sequence"/>'s cache (no memory is released).</summary>
    void Reset(int sequence);

    /// <summary>
    /// Feeds each sequence of <paramref name="feeds"/> its rows of <paramref name="tokens"/> (concatenated in feed order)
    /// at its positions Length.., appends their keys and values to its cache, and computes logits of its last LogitRows
    /// rows. Row r of a sequence (absolute position i) reads keys [0, mask.KeyEnd(i, Length + rows)) of its own cache.
    /// </summary>
    void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<SequenceFeed> feeds);

    /// <summary>Samples one token per logits row of <paramref name="sequence"/>, row r with CounterRandom.Uniform(seed, step, r).</summary>
    void Sample(int sequence, in SamplingSettings settings, ulong seed, int step, Span<int> destination);

    /// <summary>Copies <paramref name="sequence"/>'s logits of the last Forward, [LogitRowsOf(sequence), vocab], to the host.</summary>
    void CopyLogits(int sequence, Span<float> destination);

    /// <summary>
    /// From the next step on, submits each step as one CUDA graph launch instead of a launch per kernel (issue 12);
    /// false where this session cannot (any backend but CUDA, or a driver older than CUDA 12).
    /// </summary>
    bool TryEnableStepGraphs() => false;

    /// <summary>
    /// Whether a one-sequence step runs each transformer layer as one launch (on by default where the backend has
    /// launches at all; issue 12) or as its separate kernels (to see each in a profile, or to compare).
    /// </summary>
    void UseFusedLayers(bool on) { }

    /// <summary>
    /// From the next forward on, runs a step's GEMMs on tensor cores (ILGPU backends: the step's rows rounded to fp16);
    /// false where this session has no such kernels (the CPU backend).
    /// </summary>
    bool TryUseTensorCoreSteps() => false;
}
