using ILGPU;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Sampling;

public struct SamplingArgs
{
    public int Vocab;
    public int Greedy;
    public float Temperature;
    public int TopK;
    public float TopP;
    public ulong Seed;
    public int Step;
    /// <summary>
    /// Groups per row in the sliced phases: a power of two from 1 to <see cref="SamplingMath.MassChunks"/>, each group
    /// taking MassChunks / Slices whole chunks of the row. 0: <see cref="SamplerKernels.Sample"/> picks it from the row
    /// count and the device's multiprocessors. The tokens do not depend on it.
    /// </summary>
    public int Slices;
    /// <summary>The search level (1..7) a TopKLevel or TopPLevel launch counts; the launcher sets it.</summary>
    public int Level;

    internal readonly bool TopKActive => TopK > 0 && TopK < Vocab;
}

/// <summary>
/// What the sampler's phases read and write. Logits, Scaled (z = logits / T) and Weights (e^(z - max)) are [rows, V];
/// Sums holds each row's small per-slice and per-chunk results, State the searches' decided keys, so that a launch
/// reads what earlier launches of the same draw decided (layouts below).
/// </summary>
public struct SamplerViews
{
    public ArrayView<float> Logits;
    public ArrayView<float> Scaled;
    public ArrayView<float> Weights;
    /// <summary>[rows, <see cref="SumsPerRow"/>]</summary>
    public ArrayView<float> Sums;
    /// <summary>[rows, <see cref="StatePerRow"/>]</summary>
    public ArrayView<int> State;
    /// <summary>[rows]</summary>
    public ArrayView<int> Tokens;

    private const int Chunks = SamplingMath.MassChunks, Candidates = DigitSums.Candidates;

    // Sums, per row. The level buffers come in two parities: launch L reads level L - 1's and writes level L's.
    /// <summary>Each slice's largest z.</summary>
    internal const int SliceMax = 0;
    /// <summary>[2 parities][slice][15 candidates]: the top-k search's counts.</summary>
    internal const int Counts = SliceMax + Chunks;
    /// <summary>[chunk]: the mass of the top-k survivors (the top-p search's total, chunk by chunk).</summary>
    internal const int ChunkTotal = Counts + 2 * Chunks * Candidates;
    /// <summary>[chunk]: the mass of the keys above the top-p cut.</summary>
    internal const int ChunkBefore = ChunkTotal + Chunks;
    /// <summary>[chunk]: how many z equal the cut value.</summary>
    internal const int ChunkTies = ChunkBefore + Chunks;
    /// <summary>[chunk]: the mass of the final survivors (the draw's).</summary>
    internal const int ChunkKept = ChunkTies + Chunks;
    /// <summary>[2 parities][15 candidates][chunk]: the top-p search's masses.</summary>
    internal const int LevelMasses = ChunkKept + Chunks;
    public const int SumsPerRow = LevelMasses + 2 * Candidates * Chunks;

    // State, per row.
    /// <summary>[level 0..8]: the top-k key with levels below L decided (8: the k-th largest value's key).</summary>
    internal const int TopKPrefix = 0;
    /// <summary>[level 0..8]: the same for the top-p cut.</summary>
    internal const int TopPPrefix = TopKPrefix + SamplingKernel.Levels + 1;
    internal const int CutIndex = TopPPrefix + SamplingKernel.Levels + 1;
    internal const int CutValueBits = CutIndex + 1;
    internal const int MaxBits = CutValueBits + 1;
    public const int StatePerRow = 32;
}
