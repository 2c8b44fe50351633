using ILGPU;
using ILGPU.Runtime.Cuda;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Fused;

/// <summary>
/// One transformer layer of a generation step as ONE launch instead of six (issue 12 item 4: at most 60 launches a step
/// without graphs; K600's 24 layers made 148). A step here is up to <see cref="StepFeeds.MaxFeeds"/> sequences' blocks of
/// at most 16 rows each, no mask (every NBP and NTP step, a batch's step, a guided step's two streams). The launch runs
/// its phases in order, each the work of one of the separate kernels, group for group: the Q/K/V step GEMM over every
/// block (LN1 folded; one block's rows land in its cache, several blocks' in a scratch matrix), then for several blocks
/// a copy of each block's rows into its own cache, the split-key attention partials of every block, their combine,
/// the projection GEMM (+ residual), the fc GEMM (LN2 folded, GELU), the out GEMM (+ residual).
/// <para>
/// Ordering without a grid barrier: each group takes a ticket from a counter as it starts and does the ticket's piece
/// of work (tickets 0.. are the Q/K/V groups, then the next phase's, and so on), waiting first until every group of the
/// phase before has counted itself done. A group only ever waits for groups with smaller tickets, which have already
/// started (they took their tickets first) and wait only for smaller tickets still: the smallest unfinished ticket never
/// waits, so the launch always finishes, however many groups fit on the device at once (CUB's decoupled look-back
/// argument; a launch-order grid barrier would need every group resident). On the suite's one-multiprocessor CPU
/// device groups run in ticket order, so nothing waits there; FusedLayerTests also runs it on four.
/// </para>
/// <para>
/// Each output is computed by exactly the code of the separate kernel (<see cref="StepMatMulKernel.Compute"/>,
/// <see cref="DecodeAttentionKernel.PartialCompute"/>, <see cref="DecodeAttentionKernel.CombineCompute"/>), whose
/// sums do not depend on the group size: the fused step's bits equal the separate kernels'. The last group to finish
/// resets the counters for the next launch. Memory order: a group's threads fence, then one thread counts the group
/// done; a waiting thread sees the count, fences (on the GPU: MEMBAR.SC.GPU and an L1 invalidate), and the group's
/// barrier releases the others (the pattern of a cooperative grid sync).
/// </para>
/// </summary>
public static class LayerStepKernel
{
    /// <summary>The phases in launch order (<see cref="Append"/> has no groups for a single block).</summary>
    public const int QueryKeyValue = 0, Append = 1, Partial = 2, Combine = 3, Projection = 4, Fc = 5, Out = 6, Phases = 7;

    /// <summary>Counters a launch uses: the ticket, then one "groups done" per phase.</summary>
    public const int CounterCount = 1 + Phases;

    /// <summary>Shared memory of a group (floats): the larger of the step GEMM's and the attention partial's.</summary>
    public const int SharedFloats = StepMatMulKernel.SharedFloats > DecodeAttentionKernel.PartialSharedFloats
        ? StepMatMulKernel.SharedFloats : DecodeAttentionKernel.PartialSharedFloats;

    /// <summary>Whether blocks of these sizes, all at once, with this width and head size can run fused.</summary>
    public static bool Fits(ReadOnlySpan<int> blockRows, int width, int headSize)
    {
        if (blockRows.Length < 1 || blockRows.Length > StepFeeds.MaxFeeds || headSize > FlashAttentionKernel.MaxHeadSize) return false;
        int total = 0;
        foreach (int rows in blockRows)
        {
            if (rows < 1 || rows > DecodeAttentionKernel.MaxRows) return false;
            total += rows;
        }
        return StepMatMulKernel.Fits(total, width, width);
    }

    /// <summary>
    /// The group size of a fused layer for <paramref name="rows"/> rows of width C: one size serves four GEMMs whose
    /// outputs are C, 3C, 4C and C wide, where each separate launch picked its own (<see cref="StepMatMulKernel.Launch"/>:
    /// fewer warps a group until the groups cover the multiprocessors). The size the 2C-wide GEMM would get is the
    /// compromise: the C-wide GEMMs get half the groups they would alone, the 4C-wide ones twice the groups (each group
    /// recomputes the folded norm's row statistics, a read of the rows).
    /// </summary>
    public static int GroupSize(int width, int rows, int groupSize, int multiprocessors)
        => StepMatMulKernel.Launch(2 * width, rows, groupSize, multiprocessors).GroupDim.X;

    /// <summary>Groups of each phase for <paramref name="feeds"/> (cache positions and rows) with groups of <paramref name="groupSize"/>.</summary>
    public static LayerPhases Plan(int width, int heads, in StepFeeds feeds, int groupSize)
    {
        int rows = feeds.TotalRows, columnWarps = groupSize / 32 / StepMatMulKernel.RowGroups(rows);
        int Gemm(int n) => ((n + StepMatMulKernel.Columns - 1) / StepMatMulKernel.Columns + columnWarps - 1) / columnWarps;
        int partials = 0;
        for (int f = 0; f < feeds.Count; f++) partials += DecodeAttentionKernel.PartialGroups(heads, feeds[f].Start, feeds[f].Rows);
        return new LayerPhases
        {
            QueryKeyValueGroups = Gemm(3 * width),
            AppendGroups = feeds.Count > 1 ? (rows * 3 * width + groupSize - 1) / groupSize : 0,
            PartialGroups = partials,
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
        // the nearest phase before with groups (Append has none for one block)
        int before = phase - 1;
        while (before >= 0 && p.Phases.Groups(before) == 0) before--;
        if (before >= 0) WaitFor(p.Counters, before, p.Phases.Groups(before));

        int width = p.Attention.Width, stride = p.Attention.InputStride;
        if (phase == QueryKeyValue)
        {
            // one block: straight into its cache at its positions; several: into the scratch, Append copies them
            var first = p.Feeds[0];
            var destination = p.Feeds.Count == 1 ? p.Cache.SubView(first.Cache + (long)first.Start * stride) : p.QueryKeyValueRows;
            StepMatMulKernel.Compute(local, p.X.Cast<Float4>(), p.QueryKeyValue, p.QueryKeyValueBias, destination, p.QueryKeyValueArgs, p.QueryKeyValueNorm, shared);
        }
        else if (phase == Append)
        {
            int e = local * Group.DimX + Group.IdxX;
            if (e < p.Feeds.TotalRows * stride)
            {
                int row = e / stride, f = p.Feeds.OfRow(row);
                var feed = p.Feeds[f];
                p.Cache[feed.Cache + (long)(feed.Start + row - feed.RowStart) * stride + e - row * stride] = p.QueryKeyValueRows[e];
            }
        }
        else if (phase == Partial)
        {
            int f = 0; // the block whose groups hold this one
            while (f < p.Feeds.Count - 1)
            {
                int own = DecodeAttentionKernel.PartialGroups(p.Attention.Heads, p.Feeds[f].Start, p.Feeds[f].Rows);
                if (local < own) break;
                local -= own;
                f++;
            }
            var feed = p.Feeds[f];
            var cache = p.Cache.SubView(feed.Cache);
            DecodeAttentionKernel.PartialCompute(local, cache.SubView((long)feed.Start * stride), cache.SubView(width), cache.SubView(2 * width),
                p.PartialOutput.SubView(f * p.PartialOutputStride), p.PartialStats.SubView(f * p.PartialStatsStride), p.Attention.For(feed), shared);
        }
        else if (phase == Combine)
        {
            int e = local * Group.DimX + Group.IdxX;
            if (e < p.Feeds.TotalRows * width)
            {
                int f = p.Feeds.OfRow(e / width);
                var feed = p.Feeds[f];
                DecodeAttentionKernel.CombineCompute(e - feed.RowStart * width, p.PartialOutput.SubView(f * p.PartialOutputStride),
                    p.PartialStats.SubView(f * p.PartialStatsStride), p.Attended.SubView((long)feed.RowStart * width), p.Attention.For(feed));
            }
        }
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

    /// <summary>
    /// Until <paramref name="count"/> groups of <paramref name="phase"/> are done (one thread polls), then their writes are
    /// visible to the group. On CUDA a poll that finds the phase unfinished sleeps ~0.1 µs before the next, so that the
    /// hundreds of waiting groups of a launch do not keep one L2 address busy while the producers count themselves done.
    /// </summary>
    private static void WaitFor(ArrayView<int> counters, int phase, int count)
    {
        if (Group.IdxX == 0)
            while (Atomic.Add(ref counters[1 + phase], 0) < count)
                if (CudaAsm.IsSupported) CudaAsm.Emit("nanosleep.u32 100;");
        Group.Barrier();
        MemoryFence.DeviceLevel();
    }
}
