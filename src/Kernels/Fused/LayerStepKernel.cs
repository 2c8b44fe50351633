using ILGPU;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Fused;

/// <summary>
/// One transformer layer of a generation step (one block of at most 16 rows, no mask) as ONE launch instead of six
/// (issue 12 item 4: at most 60 launches a step without graphs; K600's 24 layers made 148). The launch runs six
/// phases in order, each the work of one of the separate kernels, group for group:
/// Q/K/V step GEMM (LN1 folded; its rows land in the cache), split-key attention partials, their combine, the
/// projection GEMM (+ residual), the fc GEMM (LN2 folded, GELU), the out GEMM (+ residual).
/// <para>
/// Ordering without a grid barrier: each group takes a ticket from a counter as it starts and does the ticket's piece
/// of work (tickets 0.. are the Q/K/V groups, then the partials' groups, and so on), waiting first until every group
/// of the phase before has counted itself done. A group only ever waits for groups with smaller tickets, which have
/// already started (they took their tickets first) and wait only for smaller tickets still: the smallest unfinished
/// ticket never waits, so the launch always finishes, however many groups fit on the device at once (this is how
/// CUB's decoupled look-back stays deadlock-free; a launch-order grid barrier would need every group resident).
/// On ILGPU's CPU accelerator groups run one after another in ticket order, so nothing ever waits there.
/// </para>
/// <para>
/// Each output is computed by exactly the code of the separate kernel (<see cref="StepMatMulKernel.Compute"/>,
/// <see cref="DecodeAttentionKernel.PartialCompute"/>, <see cref="DecodeAttentionKernel.CombineCompute"/>), whose
/// sums do not depend on the group size: the fused step's bits equal the unfused step's. The last group to finish
/// resets the counters for the next launch. Memory order: a group's threads fence, then one thread counts the group
/// done; a waiting thread sees the count, fences, and the group's barrier releases the others (the pattern of a
/// cooperative grid sync).
/// </para>
/// </summary>
public static class LayerStepKernel
{
    /// <summary>The phases in launch order.</summary>
    public const int QueryKeyValue = 0, Partial = 1, Combine = 2, Projection = 3, Fc = 4, Out = 5, Phases = 6;

    /// <summary>Counters a launch uses: the ticket, then one "groups done" per phase.</summary>
    public const int CounterCount = 1 + Phases;

    /// <summary>Shared memory of a group (floats): the larger of the step GEMM's and the attention partial's.</summary>
    public const int SharedFloats = StepMatMulKernel.SharedFloats > DecodeAttentionKernel.PartialSharedFloats
        ? StepMatMulKernel.SharedFloats : DecodeAttentionKernel.PartialSharedFloats;

    /// <summary>Whether a step of <paramref name="rows"/> rows with this width and head size can run fused.</summary>
    public static bool Fits(int rows, int width, int headSize) =>
        rows >= 1 && rows <= DecodeAttentionKernel.MaxRows && StepMatMulKernel.Fits(rows, width, width) && headSize <= FlashAttentionKernel.MaxHeadSize;

    /// <summary>
    /// The group size of a fused layer for <paramref name="width"/> C: one size serves four GEMMs whose outputs are C,
    /// 3C, 4C and C wide, where each separate launch picked its own (<see cref="StepMatMulKernel.Launch"/>: fewer warps
    /// a group until the groups cover the multiprocessors). The size the 2C-wide GEMM would get is the compromise: the
    /// C-wide GEMMs get half the groups they would alone, the 4C-wide ones twice the groups (each group recomputes the
    /// folded norm's row statistics, a read of the 16 rows).
    /// </summary>
    public static int GroupSize(int width, int rows, int groupSize, int multiprocessors)
        => StepMatMulKernel.Launch(2 * width, rows, groupSize, multiprocessors).GroupDim.X;

    /// <summary>Groups of each phase for a step of <paramref name="rows"/> rows at cache position <paramref name="start"/>.</summary>
    public static LayerPhases Plan(int width, int heads, int rows, int start, int groupSize)
    {
        int warps = groupSize / 32;
        int Gemm(int n) => ((n + StepMatMulKernel.Columns - 1) / StepMatMulKernel.Columns + warps - 1) / warps;
        return new LayerPhases
        {
            QueryKeyValueGroups = Gemm(3 * width),
            PartialGroups = heads * DecodeAttentionKernel.Chunks(start + rows),
            CombineGroups = (rows * width + groupSize - 1) / groupSize,
            ProjectionGroups = Gemm(width),
            FcGroups = Gemm(4 * width),
            OutGroups = Gemm(width),
        };
    }

    /// <summary>The launch: <see cref="LayerPhases.Total"/> groups of <see cref="GroupSize"/> threads.</summary>
    public static void Layer<TW>(LayerStepArgs<TW> p) where TW : struct, IWeightView
    {
        var shared = SharedMemory.Allocate<float>(SharedFloats);
        var ticket = SharedMemory.Allocate<int>(1);
        if (Group.IdxX == 0) ticket[0] = Atomic.Add(ref p.Counters[0], 1);
        Group.Barrier();
        int local = ticket[0], phase = 0;
        while (phase < Phases - 1 && local >= p.Phases.Groups(phase))
        {
            local -= p.Phases.Groups(phase);
            phase++;
        }
        if (phase > 0) WaitFor(p.Counters, phase - 1, p.Phases.Groups(phase - 1));

        int width = p.Attention.Width, stride = p.Attention.InputStride;
        if (phase == QueryKeyValue)
            StepMatMulKernel.Compute(local, p.X.Cast<Float4>(), p.QueryKeyValue, p.QueryKeyValueBias, p.Cache.SubView((long)p.Attention.Start * stride),
                p.QueryKeyValueArgs, p.QueryKeyValueNorm, shared);
        else if (phase == Partial)
            DecodeAttentionKernel.PartialCompute(local, p.Cache.SubView((long)p.Attention.Start * stride), p.Cache.SubView(width), p.Cache.SubView(2 * width),
                p.PartialOutput, p.PartialStats, p.Attention, shared);
        else if (phase == Combine)
            DecodeAttentionKernel.CombineCompute(local * Group.DimX + Group.IdxX, p.PartialOutput, p.PartialStats, p.Attended, p.Attention);
        else if (phase == Projection)
            StepMatMulKernel.Compute(local, p.Attended.Cast<Float4>(), p.Projection, p.ProjectionBias, p.X, p.ProjectionArgs, p.NoNorm, shared);
        else if (phase == Fc)
            StepMatMulKernel.Compute(local, p.X.Cast<Float4>(), p.Fc, p.FcBias, p.Hidden, p.FcArgs, p.FcNorm, shared);
        else
            StepMatMulKernel.Compute(local, p.Hidden.Cast<Float4>(), p.Out, p.OutBias, p.X, p.OutArgs, p.NoNorm, shared);

        // every thread's writes before the group counts itself done
        MemoryFence.DeviceLevel();
        Group.Barrier();
        if (Group.IdxX == 0)
        {
            int done = Atomic.Add(ref p.Counters[1 + phase], 1) + 1;
            // the last group of the last phase: every group has taken its ticket and finished, nobody reads a counter again
            if (phase == Phases - 1 && done == p.Phases.Groups(phase))
                for (int i = 0; i < CounterCount; i++) Atomic.Exchange(ref p.Counters[i], 0);
        }
    }

    /// <summary>Until <paramref name="count"/> groups of <paramref name="phase"/> are done (one thread polls), then their writes are visible to the group.</summary>
    private static void WaitFor(ArrayView<int> counters, int phase, int count)
    {
        if (Group.IdxX == 0)
            while (Atomic.Add(ref counters[1 + phase], 0) < count) { }
        Group.Barrier();
        MemoryFence.DeviceLevel();
    }
}

/// <summary>How many groups each phase of a fused layer launch takes (<see cref="LayerStepKernel.Plan"/>).</summary>
public struct LayerPhases
{
    public int QueryKeyValueGroups, PartialGroups, CombineGroups, ProjectionGroups, FcGroups, OutGroups;

    public readonly int Groups(int phase) => phase switch
    {
        LayerStepKernel.QueryKeyValue => QueryKeyValueGroups,
        LayerStepKernel.Partial => PartialGroups,
        LayerStepKernel.Combine => CombineGroups,
        LayerStepKernel.Projection => ProjectionGroups,
        LayerStepKernel.Fc => FcGroups,
        _ => OutGroups,
    };

    public readonly int Total => QueryKeyValueGroups + PartialGroups + CombineGroups + ProjectionGroups + FcGroups + OutGroups;
}

/// <summary>
/// Everything one fused layer launch reads and writes (one struct: a kernel takes at most a handful of parameters
/// comfortably, and the host fills this in one place). Rows are the step's block; X is the residual stream.
/// </summary>
public struct LayerStepArgs<TW> where TW : struct, IWeightView
{
    /// <summary>[rows, C]: read by the Q/K/V and fc phases (normalised there), added to by the projection and out phases.</summary>
    public ArrayView<float> X;
    /// <summary>This sequence's cache of this layer from position 0: [capacity, 3C] of Q|K|V rows.</summary>
    public ArrayView<float> Cache;
    public ArrayView<float> Attended, Hidden, PartialOutput, PartialStats;
    /// <summary><see cref="LayerStepKernel.CounterCount"/> zeros before the launch, zeros again after it.</summary>
    public ArrayView<int> Counters;
    public TW QueryKeyValue, Projection, Fc, Out;
    /// <summary>The Q/K/V and fc biases are the folded ones (β of the norm inside, <see cref="StepNorm"/>).</summary>
    public ArrayView<float> QueryKeyValueBias, ProjectionBias, FcBias, OutBias;
    public StepNorm QueryKeyValueNorm, FcNorm, NoNorm;
    public MatMulArgs QueryKeyValueArgs, ProjectionArgs, FcArgs, OutArgs;
    public AttentionArgs Attention;
    public LayerPhases Phases;
}
