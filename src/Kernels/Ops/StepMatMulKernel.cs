using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

/// <summary>
/// The generation step's linear layers: C[M, N] (=|+=) A[M, K]·W[N, K]ᵀ (+ bias, GELU) for M ≤ 16 rows per warp (one
/// block of one sequence) and up to 8 such row groups per launch (a batch's blocks), where every weight is used by a
/// few rows and the work is streaming W once at memory speed. One warp per 4 output columns and 16 rows, no shared
/// memory for operands, no block barriers: lane l reads weights k = 8l.., 8l+256.., 16 bytes at a time
/// (<see cref="IWeightView.Fetch8"/>: one LDG.128 for fp16/bf16, two for fp32), four columns' loads in flight and the
/// next pass's issued before this pass's multiplies, and multiplies them with the same k of its 16 A rows (A is small
/// and read through L1). The warps of a group that share
/// 4 columns take consecutive row groups, so a weight comes from DRAM once and from L1/L2 for the other row groups.
/// The 64 accumulators are scalar registers (16 <see cref="Acc4"/> locals, rows unrolled by hand: an array would live
/// in local memory). At the end the 64 partial sums go through shared memory, lane l adds up outputs l and l + 32 in
/// lane order (deterministic: same order every launch, and the same for a row whichever row group it sits in, so a
/// batched row gets the bits it gets alone; 2 x 32 stores, 64 loads and 4 warp barriers instead of 320 shuffles,
/// which ILGPU's CPU accelerator emulates slowly), and the epilogue adds bias, GELU and the residual. Needs K % 8 == 0
/// and Lda % 4 == 0 (16-byte aligned rows); the tiled kernel takes other shapes. With <see cref="MatMulArgs.KSplits"/> S
/// > 1, S warps share each column quad and row group, each walking 1/S of K (in whole passes), and the first adds the
/// others' sums to its own in split order after a group barrier: S times the warps for a GEMM with few columns and a
/// long K (Nsight Compute, 2026-12-01: K600's out GEMM had one warp a scheduler, stalled on its loads 85% of the
/// time); the rows a launch takes fall to <see cref="MaxBatchRows"/> / S. With a <see cref="StepNorm"/> on, the
/// LayerNorm before the GEMM happens here (its row statistics in a short pass the group's warps share, γ on the
/// streamed weights, the centring in the epilogue), which saves its launch and its write and read of the rows.
/// Grid: <see cref="Launch"/>.
/// </summary>
public static class StepMatMulKernel
{
    public const int MaxRows = 16, Columns = 4, KPerLane = 8, KPerPass = 32 * KPerLane;
    /// <summary>Most warps per group (the reduction's shared memory is sized for them: 8 x 32 x 33 floats, 33.8 KB).</summary>
    public const int MaxWarps = 8;
    /// <summary>Rows one launch takes: a row group of <see cref="MaxRows"/> per warp, at most <see cref="MaxWarps"/> row groups.</summary>
    public const int MaxBatchRows = MaxRows * MaxWarps;
    private const int Stride = 33;
    /// <summary>K slices of a folded norm's row sums (<see cref="RowStatistics"/>): fixed, so the sums do not depend on the launch.</summary>
    private const int Slices = 8;

    /// <summary>Whether a matmul of this shape can run here (else the tiled kernel), K split <paramref name="splits"/> ways.</summary>
    public static bool Fits(int m, int k, int lda, int splits = 1) =>
        m >= 1 && ValidSplits(splits) && RowGroups(m) * splits <= MaxWarps && k % KPerLane == 0 && lda % 4 == 0;

    /// <summary>K splits a group can hold: 1, 2, 4 or 8.</summary>
    public static bool ValidSplits(int splits) => splits is 1 or 2 or 4 or 8;

    /// <summary>Row groups of <see cref="MaxRows"/> for <paramref name="m"/> rows.</summary>
    public static int RowGroups(int m) => (m + MaxRows - 1) / MaxRows;

    /// <summary>
    /// The launch for M rows and N columns with groups of at most <paramref name="groupSize"/> threads (a multiple of 32):
    /// each group holds every row group of a few column quads, made fewer while that leaves fewer groups than
    /// <paramref name="multiprocessors"/>: a 1536-column GEMM is 384 column warps, which in groups of 8 would stream its
    /// weights through only 48 of an H100's 132 SMs.
    /// </summary>
    public static KernelConfig Launch(int n, int m, int groupSize, int multiprocessors = 1, int splits = 1)
    {
        int rowGroups = RowGroups(m);
        if (!ValidSplits(splits)) throw new ArgumentOutOfRangeException(nameof(splits), splits, "K splits: 1, 2, 4 or 8");
        if (rowGroups * splits > MaxWarps)
            throw new ArgumentOutOfRangeException(nameof(m), m, $"the step GEMM takes at most {MaxBatchRows / splits} rows a launch with K split {splits} ways");
        int columnWarps = Math.Max(1, Math.Min(MaxWarps, groupSize / 32) / (rowGroups * splits)), needed = (n + Columns - 1) / Columns;
        while (columnWarps > 1 && (needed + columnWarps - 1) / columnWarps < multiprocessors) columnWarps /= 2;
        return Config(n, m, columnWarps, splits);
    }

    /// <summary>
    /// The grid for <paramref name="columnWarps"/> column quads a group, K split <paramref name="splits"/> ways: what
    /// <see cref="Launch"/> returns once it has chosen them, and what the launch-shape sweep times for each choice.
    /// </summary>
    public static KernelConfig Config(int n, int m, int columnWarps, int splits = 1)
    {
        int quads = (n + Columns - 1) / Columns;
        return new KernelConfig((quads + columnWarps - 1) / columnWarps, columnWarps * RowGroups(m) * splits * 32);
    }

    /// <summary>One row's four column sums.</summary>
    public struct Acc4
    {
        public float C0, C1, C2, C3;
    }

    /// <param name="a">A as 16-byte vectors: row r starts at vector r·Lda/4</param><param name="w">[N, K]</param>
    /// <param name="bias">[N] (read only if HasBias)</param><param name="c">[M, Ldc]</param>
    /// <param name="norm">a LayerNorm of A's rows folded in (<see cref="StepNorm"/>), or off</param>
    public static void Step<TW>(ArrayView<Float4> a, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args, StepNorm norm) where TW : struct, IWeightView
        => Compute(Grid.IdxX, a, w, bias, c, args, norm, SharedMemory.Allocate<float>(SharedFloats));

    /// <summary>Shared memory a group needs (floats): the reduction's scratch, then the folded norm's slice sums.</summary>
    public const int SharedFloats = MaxWarps * 32 * Stride + 2 * MaxWarps * MaxRows * Slices;

    /// <summary>
    /// What group <paramref name="group"/> of a <see cref="Launch"/> grid computes, with <paramref name="shared"/>
    /// (<see cref="SharedFloats"/>) as its shared memory: the kernel above, or one phase of a fused layer
    /// (<see cref="Fused.LayerStepKernel"/>), which hands out group numbers itself. Every warp of the group calls it.
    /// </summary>
    public static void Compute<TW>(int group, ArrayView<Float4> a, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args, StepNorm norm,
        ArrayView<float> shared) where TW : struct, IWeightView
    {
        int lane = Group.IdxX % 32, warp = Group.IdxX / 32, rowGroups = (args.M + MaxRows - 1) / MaxRows;
        int splits = args.KSplits > 1 ? args.KSplits : 1, columnWarps = Group.DimX / 32 / rowGroups / splits;
        // warps [s·columnWarps·rowGroups, (s + 1)·columnWarps·rowGroups) walk split s of K; within a split as unsplit
        int perSplit = columnWarps * rowGroups, split = warp / perSplit, inSplit = warp % perSplit;
        int columnWarp = inSplit / rowGroups, rowGroup = inSplit % rowGroups;
        int n0 = (group * columnWarps + columnWarp) * Columns;
        // split s: passes [s·P, (s + 1)·P) of the K / KPerPass passes, so every lane's k stays where it is unsplit
        int passes = (args.K + KPerPass - 1) / KPerPass, splitPasses = (passes + splits - 1) / splits;
        int kBegin = split * splitPasses * KPerPass, kEnd = kBegin + splitPasses * KPerPass < args.K ? kBegin + splitPasses * KPerPass : args.K;
        // this warp's rows: [firstRow, firstRow + rows), rows ≤ 16; A and C are addressed from firstRow on, so a row's
        // arithmetic is the same in every row group
        int firstRow = rowGroup * MaxRows, rows = args.M - firstRow;
        int lda4 = args.Lda / 4;
        var block = a.SubView((long)firstRow * lda4);
        var scratch = shared.SubView(0, MaxWarps * 32 * Stride);
        var slices = shared.SubView(MaxWarps * 32 * Stride, 2 * MaxWarps * MaxRows * Slices);
        int at = warp * 32 * Stride + lane;
        // every warp of the group takes part (block barriers), before the warps past N leave
        if (norm.Enabled != 0) RowStatistics(block, rows, lda4, args.K, rowGroup, split * columnWarps + columnWarp, splits * columnWarps, lane, scratch, at - lane, slices);
        // the whole warp: n0 is the same for its lanes; with K split, a warp past N still meets the group barrier below
        bool idle = n0 >= args.N;
        if (idle && splits == 1) return;
        if (idle) kEnd = kBegin;
        // columns past N read the last one (in bounds) and are not stored
        int last = args.N - 1;
        long w0 = (long)n0 * args.K, w1 = (long)(n0 + 1 < last ? n0 + 1 : last) * args.K;
        long w2 = (long)(n0 + 2 < last ? n0 + 2 : last) * args.K, w3 = (long)(n0 + 3 < last ? n0 + 3 : last) * args.K;
        Acc4 r0 = default, r1 = default, r2 = default, r3 = default, r4 = default, r5 = default, r6 = default, r7 = default, r8 = default, r9 = default, r10 = default, r11 = default, r12 = default, r13 = default, r14 = default, r15 = default;
        // The weights stream a pass ahead: pass p + 1's loads are in flight while pass p multiplies (Nsight Compute,
        // 2026-12-01: the step GEMMs' warps waited on their loads 40-85% of their time, with nothing of the next pass in
        // flight). They are held as stored (Raw8: 16 registers for fp16) and widened when their pass comes.
        int k = kBegin + lane * KPerLane;
        Raw8 f0 = default, f1 = default, f2 = default, f3 = default;
        if (k < kEnd) Fetch(w, w0, w1, w2, w3, k, out f0, out f1, out f2, out f3);
        for (; k < kEnd; k += KPerPass)
        {
            Vec8 x0 = w.Widen(f0), x1 = w.Widen(f1), x2 = w.Widen(f2), x3 = w.Widen(f3);
            // the last pass fetches its own k again (in bounds, and in L1 by now) rather than branch
            Fetch(w, w0, w1, w2, w3, k + KPerPass < kEnd ? k + KPerPass : k, out f0, out f1, out f2, out f3);
            int a4 = k / 4;
            if (norm.Enabled != 0)
            {
                Float4 g0 = norm.Gamma[a4], g1 = norm.Gamma[a4 + 1];
                x0 = Scaled(x0, g0, g1); x1 = Scaled(x1, g0, g1); x2 = Scaled(x2, g0, g1); x3 = Scaled(x3, g0, g1);
            }
            if (0 < rows) Row(ref r0, block, 0 * lda4 + a4, x0, x1, x2, x3);
            if (1 < rows) Row(ref r1, block, 1 * lda4 + a4, x0, x1, x2, x3);
            if (2 < rows) Row(ref r2, block, 2 * lda4 + a4, x0, x1, x2, x3);
            if (3 < rows) Row(ref r3, block, 3 * lda4 + a4, x0, x1, x2, x3);
            if (4 < rows) Row(ref r4, block, 4 * lda4 + a4, x0, x1, x2, x3);
            if (5 < rows) Row(ref r5, block, 5 * lda4 + a4, x0, x1, x2, x3);
            if (6 < rows) Row(ref r6, block, 6 * lda4 + a4, x0, x1, x2, x3);
            if (7 < rows) Row(ref r7, block, 7 * lda4 + a4, x0, x1, x2, x3);
            if (8 < rows) Row(ref r8, block, 8 * lda4 + a4, x0, x1, x2, x3);
            if (9 < rows) Row(ref r9, block, 9 * lda4 + a4, x0, x1, x2, x3);
            if (10 < rows) Row(ref r10, block, 10 * lda4 + a4, x0, x1, x2, x3);
            if (11 < rows) Row(ref r11, block, 11 * lda4 + a4, x0, x1, x2, x3);
            if (12 < rows) Row(ref r12, block, 12 * lda4 + a4, x0, x1, x2, x3);
            if (13 < rows) Row(ref r13, block, 13 * lda4 + a4, x0, x1, x2, x3);
            if (14 < rows) Row(ref r14, block, 14 * lda4 + a4, x0, x1, x2, x3);
            if (15 < rows) Row(ref r15, block, 15 * lda4 + a4, x0, x1, x2, x3);
        }
        // the 64 sums across the warp, through shared memory: lane l writes its partial of output o at [o, l], then sums
        // row l (outputs l, then l + 32) in lane order: one fixed order, two warp barriers per half, conflict-free (stride 33)
        float out0 = SumOutputs(scratch, at, lane, r0, r1, r2, r3, r4, r5, r6, r7);
        float out1 = SumOutputs(scratch, at, lane, r8, r9, r10, r11, r12, r13, r14, r15);
        if (splits > 1)
        {
            // each split's 64 sums into its warp's own scratch (free again after SumOutputs), then split 0 adds them up in
            // split order: the same order in every launch, whichever other warps share the group
            int own = warp * 32 * Stride;
            scratch[own + lane] = out0;
            scratch[own + 32 + lane] = out1;
            Group.Barrier();
            if (split != 0 || idle) return;
            for (int s = 1; s < splits; s++)
            {
                int other = (s * perSplit + inSplit) * 32 * Stride;
                out0 += scratch[other + lane];
                out1 += scratch[other + 32 + lane];
            }
        }
        if (norm.Enabled != 0)
        {
            int n = n0 + lane % 4;
            float u = norm.ColumnSums[n < args.N ? n : args.N - 1];
            out0 = Normalized(out0, u, slices, rowGroup, lane / 4, args.K);
            out1 = Normalized(out1, u, slices, rowGroup, 8 + lane / 4, args.K);
        }
        args.Store(c, bias, firstRow + lane / 4, n0 + lane % 4, out0); // rows past M are not stored
        args.Store(c, bias, firstRow + 8 + lane / 4, n0 + lane % 4, out1);
    }

    /// <summary>The four columns' weights k..k+7, as stored (<see cref="IWeightView.Fetch8"/>): one pass's loads.</summary>
    private static void Fetch<TW>(TW w, long w0, long w1, long w2, long w3, int k, out Raw8 f0, out Raw8 f1, out Raw8 f2, out Raw8 f3)
        where TW : struct, IWeightView
    {
        f0 = w.Fetch8(w0 + k);
        f1 = w.Fetch8(w1 + k);
        f2 = w.Fetch8(w2 + k);
        f3 = w.Fetch8(w3 + k);
    }

    /// <summary>The 8 weights times γ_k: the folded norm's scale, once per weight for all 16 rows.</summary>
    private static Vec8 Scaled(Vec8 x, Float4 g0, Float4 g1) => new()
    {
        V0 = x.V0 * g0.X, V1 = x.V1 * g0.Y, V2 = x.V2 * g0.Z, V3 = x.V3 * g0.W,
        V4 = x.V4 * g1.X, V5 = x.V5 * g1.Y, V6 = x.V6 * g1.Z, V7 = x.V7 * g1.W,
    };

    /// <summary>
    /// Each row's Σ_k x_k (then Σ_k (x_k − mean)², the LayerNorm's two passes) as <see cref="Slices"/> partial sums in
    /// shared memory: slice s of the row's K/4 vectors is summed by column warp s mod columnWarps, lane l taking
    /// vectors l, l + 32, ... and the 32 lane partials added in lane order. So the sums are the same whatever the launch's
    /// shape (a row batched or alone gets the same bits), and the group's warps share the extra reading of A: with 8
    /// column warps each reads 1/8 of its rows twice, on top of the whole rows its main loop reads. A warp publishes up
    /// to 32 (row, slice) partials per warp barrier (all of them for a 1-row step with one column warp, as on ILGPU's
    /// CPU accelerator, where barriers are the cost).
    /// </summary>
    private static void RowStatistics(ArrayView<Float4> block, int rows, int lda4, int k, int rowGroup, int columnWarp, int columnWarps, int lane,
        ArrayView<float> scratch, int warpScratch, ArrayView<float> slices)
    {
        int k4 = k / 4, rowSlots = MaxRows * Slices, first = rowGroup * rowSlots;
        int valid = rows < MaxRows ? rows : MaxRows, mine = (Slices - columnWarp + columnWarps - 1) / columnWarps, pairs = valid * mine;
        for (int pass = 0; pass < 2; pass++)
        {
            int into = pass * MaxWarps * rowSlots + first;
            for (int round = 0; round < pairs; round += 32)
            {
                int count = pairs - round < 32 ? pairs - round : 32;
                for (int j = 0; j < count; j++)
                {
                    int r = (round + j) % valid, s = columnWarp + (round + j) / valid * columnWarps;
                    int lo = s * k4 / Slices, hi = (s + 1) * k4 / Slices;
                    float mean = pass == 0 ? 0f : Total(slices, first + r * Slices) / k, partial = 0f;
                    for (int v = lo + lane; v < hi; v += 32)
                    {
                        Float4 x = block[r * lda4 + v];
                        if (pass == 0) partial += x.X + x.Y + x.Z + x.W;
                        else
                        {
                            float d0 = x.X - mean, d1 = x.Y - mean, d2 = x.Z - mean, d3 = x.W - mean;
                            partial += d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3;
                        }
                    }
                    scratch[warpScratch + j * Stride + lane] = partial;
                }
                Warp.Barrier();
                if (lane < count)
                {
                    int r = (round + lane) % valid, s = columnWarp + (round + lane) / valid * columnWarps;
                    float sum = 0f;
                    for (int l = 0; l < 32; l++) sum += scratch[warpScratch + lane * Stride + l];
                    slices[into + r * Slices + s] = sum;
                }
                // the next round's partials overwrite the scratch; after the last round the other warps' slices must be in
                if (round + 32 < pairs) Warp.Barrier();
            }
            if (Group.DimX == 32) Warp.Barrier();
            else Group.Barrier();
        }
    }

    /// <summary>Σ of a row's <see cref="Slices"/> partial sums, in slice order.</summary>
    private static float Total(ArrayView<float> slices, int at)
    {
        float sum = 0f;
        for (int s = 0; s < Slices; s++) sum += slices[at + s];
        return sum;
    }

    /// <summary>rstd·(Σ_k x_k·γ_k·w_nk − mean·u_n): the folded LayerNorm's correction of one output of row r (eps 1e-5, biased variance, as LayerNormKernel).</summary>
    private static float Normalized(float sum, float u, ArrayView<float> slices, int rowGroup, int r, int k)
    {
        int at = rowGroup * MaxRows * Slices + r * Slices;
        float mean = Total(slices, at) / k;
        float rstd = 1f / ILGPU.Algorithms.XMath.Sqrt(Total(slices, MaxWarps * MaxRows * Slices + at) / k + 1e-5f);
        return rstd * (sum - mean * u);
    }

    /// <summary>
    /// One A row's 8 values times the four columns' 8 weights, into the row's sums. The caller skips rows past M (a
    /// warp-uniform branch): a 1-row step (NTP, hybrid's first steps) does 1/16 of the multiplies, which matters on
    /// ILGPU's CPU accelerator, where the parity suite runs every step.
    /// </summary>
    private static void Row(ref Acc4 acc, ArrayView<Float4> a, int at, Vec8 x0, Vec8 x1, Vec8 x2, Vec8 x3)
    {
        Float4 p = a[at], q = a[at + 1];
        acc.C0 = Dot(acc.C0, p, q, x0);
        acc.C1 = Dot(acc.C1, p, q, x1);
        acc.C2 = Dot(acc.C2, p, q, x2);
        acc.C3 = Dot(acc.C3, p, q, x3);
    }

    /// <summary>sum + p·x[0..3] + q·x[4..7], as a chain of 8 FMAs onto the running sum.</summary>
    private static float Dot(float sum, Float4 p, Float4 q, Vec8 x) =>
        sum + p.X * x.V0 + p.Y * x.V1 + p.Z * x.V2 + p.W * x.V3 + q.X * x.V4 + q.Y * x.V5 + q.Z * x.V6 + q.W * x.V7;

    /// <summary>
    /// Eight rows' partials (32 outputs) published by every lane, then output <paramref name="lane"/> summed over the
    /// warp's lanes in lane order: one half of the step's 64 outputs.
    /// </summary>
    private static float SumOutputs(ArrayView<float> scratch, int at, int lane, Acc4 s0, Acc4 s1, Acc4 s2, Acc4 s3, Acc4 s4, Acc4 s5, Acc4 s6, Acc4 s7)
    {
        Publish(scratch, at, 0, s0); Publish(scratch, at, 4, s1); Publish(scratch, at, 8, s2); Publish(scratch, at, 12, s3);
        Publish(scratch, at, 16, s4); Publish(scratch, at, 20, s5); Publish(scratch, at, 24, s6); Publish(scratch, at, 28, s7);
        return SumRow(scratch, at - lane + lane * Stride);
    }

    /// <summary>A row's four column sums as this lane's partials of outputs o..o+3 (scratch rows o..o+3).</summary>
    private static void Publish(ArrayView<float> scratch, int at, int o, Acc4 sums)
    {
        scratch[at + o * Stride] = sums.C0;
        scratch[at + (o + 1) * Stride] = sums.C1;
        scratch[at + (o + 2) * Stride] = sums.C2;
        scratch[at + (o + 3) * Stride] = sums.C3;
    }

    /// <summary>Σ_j row[j], j = 0..31, after the warp's writes; the warp barrier after it lets the next half reuse the rows.</summary>
    private static float SumRow(ArrayView<float> scratch, int row)
    {
        Warp.Barrier();
        float sum = 0;
        for (int j = 0; j < 32; j++) sum += scratch[row + j];
        Warp.Barrier();
        return sum;
    }
}
