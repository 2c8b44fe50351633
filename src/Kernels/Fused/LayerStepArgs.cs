using ILGPU;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Fused;

/// <summary>How many groups each phase of a fused layer launch takes (<see cref="LayerStepKernel.Plan"/>).</summary>
public struct LayerPhases
{
    public int QueryKeyValueGroups, AppendGroups, PartialGroups, CombineGroups, ProjectionGroups, FcGroups, OutGroups;

    public readonly int Groups(int phase) => phase switch
    {
        LayerStepKernel.QueryKeyValue => QueryKeyValueGroups,
        LayerStepKernel.Append => AppendGroups,
        LayerStepKernel.Partial => PartialGroups,
        LayerStepKernel.Combine => CombineGroups,
        LayerStepKernel.Projection => ProjectionGroups,
        LayerStepKernel.Fc => FcGroups,
        _ => OutGroups,
    };

    public readonly int Total => QueryKeyValueGroups + AppendGroups + PartialGroups + CombineGroups + ProjectionGroups + FcGroups + OutGroups;
}

/// <summary>One sequence's block in a fused step: its rows in the activations, its cache (offset of this layer's) and position.</summary>
public struct StepFeed
{
    public int Rows, RowStart, Start;
    /// <summary>Offset of the sequence's cache of this layer in the session's cache (floats).</summary>
    public long Cache;
}

/// <summary>
/// The blocks of a fused step, up to <see cref="MaxFeeds"/> (the step GEMM's 8 row groups), as fixed fields: a kernel
/// parameter, so a step uploads nothing (a host copy would sync the host and stay out of a CUDA graph).
/// </summary>
public struct StepFeeds
{
    public const int MaxFeeds = StepMatMulKernel.MaxWarps;
    public int Count, TotalRows;
    public StepFeed F0, F1, F2, F3, F4, F5, F6, F7;

    public readonly StepFeed this[int i] => i switch { 0 => F0, 1 => F1, 2 => F2, 3 => F3, 4 => F4, 5 => F5, 6 => F6, _ => F7 };

    /// <summary>The feed whose rows hold activation row <paramref name="row"/> (feeds lie in order, back to back).</summary>
    public readonly int OfRow(int row)
    {
        int f = 0;
        while (f < Count - 1 && row >= this[f + 1].RowStart) f++;
        return f;
    }

    /// <summary>Appends a block (host side).</summary>
    public void Add(StepFeed feed)
    {
        if (Count == MaxFeeds) throw new InvalidOperationException($"a fused step takes at most {MaxFeeds} blocks");
        Set(Count++, feed);
        TotalRows += feed.Rows;
    }

    /// <summary>The same blocks with every cache offset moved by <paramref name="offset"/> floats (host side: layer 0's to another layer's).</summary>
    public readonly StepFeeds AtLayerOffset(long offset)
    {
        var moved = this;
        for (int f = 0; f < Count; f++)
        {
            var feed = this[f];
            feed.Cache += offset;
            moved.Set(f, feed);
        }
        return moved;
    }

    private void Set(int i, StepFeed feed)
    {
        switch (i)
        {
            case 0: F0 = feed; break;
            case 1: F1 = feed; break;
            case 2: F2 = feed; break;
            case 3: F3 = feed; break;
            case 4: F4 = feed; break;
            case 5: F5 = feed; break;
            case 6: F6 = feed; break;
            default: F7 = feed; break;
        }
    }
}

/// <summary>
/// Everything one fused layer launch reads and writes (one struct: the host fills it in one place). Rows are the
/// step's blocks, back to back; X is the residual stream.
/// </summary>
public struct LayerStepArgs<TW> where TW : struct, IWeightView
{
    /// <summary>[rows, C]: read by the Q/K/V and fc phases (normalised there), added to by the projection and out phases.</summary>
    public ArrayView<float> X;
    /// <summary>The session's whole cache: [sequence, layer, capacity, 3C] of Q|K|V rows (each feed says where its layer's starts).</summary>
    public ArrayView<float> Cache;
    /// <summary>[rows, 3C]: several blocks' Q|K|V before the Append phase copies them to their caches (unused for one block).</summary>
    public ArrayView<float> QueryKeyValueRows;
    public ArrayView<float> Attended, Hidden;
    /// <summary>Split-key partials, one slot per feed, <see cref="PartialOutputStride"/> and <see cref="PartialStatsStride"/> apart.</summary>
    public ArrayView<float> PartialOutput, PartialStats;
    public long PartialOutputStride, PartialStatsStride;
    /// <summary><see cref="LayerStepKernel.CounterCount"/> zeros before the launch, zeros again after it.</summary>
    public ArrayView<int> Counters;
    public TW QueryKeyValue, Projection, Fc, Out;
    /// <summary>The Q/K/V and fc biases are the folded ones (β of the norm inside, <see cref="StepNorm"/>).</summary>
    public ArrayView<float> QueryKeyValueBias, ProjectionBias, FcBias, OutBias;
    public StepNorm QueryKeyValueNorm, FcNorm, NoNorm;
    public MatMulArgs QueryKeyValueArgs, ProjectionArgs, FcArgs, OutArgs;
    /// <summary>Shape and scale; each feed's Rows and Start replace this one's (<see cref="AttentionFor.For"/>).</summary>
    public AttentionArgs Attention;
    public StepFeeds Feeds;
    public LayerPhases Phases;
}

/// <summary>A step's attention arguments for one of its blocks.</summary>
public static class AttentionFor
{
    public static AttentionArgs For(this AttentionArgs shape, StepFeed feed)
    {
        var args = shape;
        args.Rows = feed.Rows;
        args.Start = feed.Start;
        return args;
    }
}
