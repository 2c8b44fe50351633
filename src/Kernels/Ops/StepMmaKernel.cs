using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Ops;

/// <summary>
/// The generation step's linear layers on tensor cores: C[M, N] (=|+=) A[M, K]·W[N, K]ᵀ (+ bias, GELU), A the step's
/// rows already in fp16 (<see cref="HalfRowsKernel"/>), fp32 accumulation. Why: at 16 rows the FMA kernel
/// (<see cref="StepMatMulKernel"/>) issues 64 FMA instructions for what one mma.m16n8k16 does, and its warps, few and
/// busy multiplying, keep too little of the weight stream in flight (Nsight Compute on the H200, 2026-12-01: the
/// step GEMMs read their weights at 144-231 GB/s of 4232). Here a warp's work per 32-deep slice is one 16-byte weight
/// load a lane per 8 columns and two mma per 16 rows, so its loads, not its arithmetic, are what it waits on, and a
/// pass's loads go out before the previous pass's multiplies.
/// <para>
/// A warp owns <see cref="WarpColumns"/> columns and <see cref="WarpRows"/> rows (the prefill tile's
/// <see cref="WarpSlice"/> with two of its four column fragments). The k order inside a slice is permuted, the same
/// way for A and W, so that every operand comes straight from one 16-byte load: lane (g = lane / 4, t = lane % 4)
/// loads k 8t..8t+7 of a slice for its rows g, g + 8 (g + 16, g + 24) and columns g, g + 8, and the fragment's logical
/// k 2t, 2t + 1 | 2t + 8, 2t + 9 of the first 16-deep half are those loads' halves 0-1 | 2-3, of the second half
/// 4-5 | 6-7. A dot product does not care which k pairs with which, only that A and W pair the same.
/// </para>
/// <para>
/// Batch invariance: every output row comes from its own A row through the same instructions whatever the rows beside
/// it, and the K split (<see cref="MatMulArgs.KSplits"/>: S warps share a tile, each walks 1/S of the slices, the
/// first adds the others' sums in split order) must be chosen from (N, K) alone (<see cref="Splits"/>), so a block's
/// rows get the same bits batched or alone. The bits differ from the FMA kernel's (A rounded to fp16, another
/// order of the sum): the parity suite bounds them against fp32 on the rounded operands.
/// </para>
/// Needs K % 8 == 0 (16-byte rows). Grid: <see cref="Launch"/>.
/// </summary>
public static class StepMmaKernel
{
    public const int WarpRows = 32, WarpColumns = 16, SliceK = 32, MaxWarps = 8;
    /// <summary>Rows one launch takes at most: row warps of <see cref="WarpRows"/>, up to 4 of them.</summary>
    public const int MaxBatchRows = 4 * WarpRows;
    /// <summary>Shared memory a group needs (floats): the split partials, 16 accumulators a lane.</summary>
    public const int SharedFloats = MaxWarps * 32 * Accumulators;
    private const int Accumulators = 16, ColumnFragments = WarpColumns / 8, SlicesPerPass = 2;

    /// <summary>Whether <paramref name="m"/> rows of depth <paramref name="k"/> fit one launch with K split <paramref name="splits"/> ways.</summary>
    public static bool Fits(int m, int k, int splits = 1) => m >= 1 && m <= MaxRows(splits) && k % 8 == 0 && k > 0;

    /// <summary>K splits a group can hold: 1, 2, 4 or 8.</summary>
    public static bool ValidSplits(int splits) => splits is 1 or 2 or 4 or 8;

    /// <summary>The most rows a launch with K split <paramref name="splits"/> ways takes (its row warps times splits fill at most 8 warps).</summary>
    public static int MaxRows(int splits) =>
        ValidSplits(splits) ? Math.Min(MaxBatchRows, WarpRows * (MaxWarps / splits)) : throw new ArgumentOutOfRangeException(nameof(splits), splits, "K splits: 1, 2, 4 or 8");

    /// <summary>Row warps for <paramref name="m"/> rows.</summary>
    public static int RowWarps(int m) => (m + WarpRows - 1) / WarpRows;

    /// <summary>
    /// The K split for an N x K weight on a device of <paramref name="multiprocessors"/>: doubled (up to 8) while the
    /// column warps are fewer than 8 a multiprocessor and each split keeps at least 4 slices (128 k). From (N, K) and
    /// the device alone, never the rows, so a row's bits do not depend on its batch. K600 on 132 SMs: q/k/v (4608 x
    /// 1536) and fc (6144 x 1536) 4 ways, proj (1536 x 1536) and out (1536 x 6144) 8 ways.
    /// </summary>
    public static int Splits(int n, int k, int multiprocessors)
    {
        int columnWarps = (n + WarpColumns - 1) / WarpColumns, slices = (k + SliceK - 1) / SliceK, splits = 1;
        while (splits < MaxWarps && columnWarps * splits < 8 * multiprocessors && slices / (2 * splits) >= 4) splits *= 2;
        return splits;
    }

    /// <summary>
    /// The launch for M rows and N columns with groups of at most <paramref name="groupSize"/> threads: each group holds
    /// every row warp and split of a few column warps, made fewer while that leaves fewer groups than
    /// <paramref name="multiprocessors"/>.
    /// </summary>
    public static KernelConfig Launch(int n, int m, int groupSize, int multiprocessors = 1, int splits = 1)
    {
        if (!Fits(m, 8, splits)) throw new ArgumentOutOfRangeException(nameof(m), m, $"the tensor-core step GEMM takes 1 to {MaxRows(splits)} rows a launch with K split {splits} ways");
        int perColumn = RowWarps(m) * splits, needed = (n + WarpColumns - 1) / WarpColumns;
        int columnWarps = Math.Max(1, Math.Min(MaxWarps, groupSize / 32) / perColumn);
        while (columnWarps > 1 && (needed + columnWarps - 1) / columnWarps < multiprocessors) columnWarps /= 2;
        return Config(n, m, columnWarps, splits);
    }

    /// <summary>The grid for <paramref name="columnWarps"/> column warps a group, K split <paramref name="splits"/> ways: what <see cref="Launch"/> returns once it has chosen, and what the launch-shape sweep times for each choice.</summary>
    public static KernelConfig Config(int n, int m, int columnWarps, int splits = 1)
    {
        int needed = (n + WarpColumns - 1) / WarpColumns;
        return new KernelConfig((needed + columnWarps - 1) / columnWarps, columnWarps * RowWarps(m) * splits * 32);
    }

    /// <param name="a">A in fp16: row r is units r·K/8.. (<see cref="HalfRowsKernel"/>)</param><param name="w">[N, K]</param>
    /// <param name="bias">[N] (read only if HasBias)</param><param name="c">[M, Ldc]</param>
    public static void Step<TW, TMma>(ArrayView<Bits128> a, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args)
        where TW : struct, IWeightView where TMma : struct, IMma
    {
        var mma = default(TMma);
        var scratch = mma.Scratch();
        var partials = SharedMemory.Allocate<float>(SharedFloats);
        int lane = Group.IdxX % 32, warp = Group.IdxX / 32, rowWarps = RowWarps(args.M);
        int splits = args.KSplits > 1 ? args.KSplits : 1, columnWarps = Group.DimX / 32 / rowWarps / splits;
        // warps [s·perSplit, (s + 1)·perSplit) walk split s of the slices; within a split, row warps fastest
        int perSplit = columnWarps * rowWarps, split = warp / perSplit, inSplit = warp % perSplit;
        int n0 = (Grid.IdxX * columnWarps + inSplit / rowWarps) * WarpColumns, m0 = inSplit % rowWarps * WarpRows;
        int slices = (args.K + SliceK - 1) / SliceK, splitSlices = (slices + splits - 1) / splits;
        int begin = split * splitSlices, end = begin + splitSlices < slices ? begin + splitSlices : slices;
        bool idle = n0 >= args.N;
        if (idle && splits == 1) return;
        if (idle) end = begin; // still meets the split reduction's barrier
        int g = lane / 4, t = lane % 4, units = args.K / 8;
        // columns past N read the last one (in bounds) and are not stored
        int last = args.N - 1;
        long w0 = (long)(n0 + g < last ? n0 + g : last) * args.K, w1 = (long)(n0 + 8 + g < last ? n0 + 8 + g : last) * args.K;
        int fragments = args.N - n0 > 8 ? ColumnFragments : 1;
        bool upper = m0 + 16 < args.M; // whether rows 16-31 of the warp exist (warp-uniform)
        // the lane's four A rows: unit t of each, advanced 4 units a slice; a row past M reads row 0 and is zeroed
        var rows = new ARows
        {
            At0 = RowStart(m0 + g, units, t, args.M), At8 = RowStart(m0 + 8 + g, units, t, args.M),
            At16 = RowStart(m0 + 16 + g, units, t, args.M), At24 = RowStart(m0 + 24 + g, units, t, args.M),
        };
        var acc = default(WarpAccumulators);
        // the weights stream a pass (2 slices) ahead: pass p + 1's four loads are issued before pass p's A loads and
        // multiplies. Every load is unconditional (a k past K or the split reads k 0 and is zeroed), so ptxas can issue
        // them back to back rather than each behind its own branch.
        Raw8 n00, n01, n10, n11;
        Fetch(w, w0, w1, begin, end, t, args.K, out n00, out n01, out n10, out n11);
        for (int s = begin; s < end; s += SlicesPerPass)
        {
            Raw8 c00 = n00, c01 = n01, c10 = n10, c11 = n11;
            Fetch(w, w0, w1, s + SlicesPerPass, end, t, args.K, out n00, out n01, out n10, out n11);
            var first = Operands(mma, a, w, rows, c00, c01, s, t, units, upper);
            var second = Operands(mma, a, w, rows, c10, c11, s + 1, t, units, upper);
            mma.Multiply(ref first, ref acc, fragments, scratch, s);
            if (s + 1 < end) mma.Multiply(ref second, ref acc, fragments, scratch, s + 1);
        }
        if (splits > 1)
        {
            // each split's accumulators into its warp's slot, then split 0 adds the others' in split order
            int own = (warp * 32 + lane) * Accumulators;
            Publish(partials, own, acc);
            Group.Barrier();
            if (split != 0 || idle) return;
            for (int other = 1; other < splits; other++) Add(partials, ((other * perSplit + inSplit) * 32 + lane) * Accumulators, ref acc);
        }
        int row = m0 + g, column = n0 + 2 * t;
        Store(c, bias, args, row, column, acc.C00);
        Store(c, bias, args, row, column + 8, acc.C01);
        Store(c, bias, args, row + 16, column, acc.C10);
        Store(c, bias, args, row + 16, column + 8, acc.C11);
    }

    /// <summary>
    /// Where a lane's A row starts reading (unit t of it), or -1 - t for a row past M (read as row 0, then zeroed). 32-bit:
    /// A is at most 128 rows of K / 8 units, and 64-bit offsets cost ptxas a third more address arithmetic a slice.
    /// </summary>
    private static int RowStart(int row, int units, int t, int m) => row < m ? row * units + t : -1 - t;

    /// <summary>The lane's four A rows (<see cref="RowStart"/>).</summary>
    private struct ARows
    {
        public int At0, At8, At16, At24;
    }

    /// <summary>The two slices from <paramref name="slice"/> on: lane t's 8 weights of columns g and g + 8 in each (zeros past K or past the split).</summary>
    private static void Fetch<TW>(TW w, long w0, long w1, int slice, int end, int t, int k, out Raw8 f00, out Raw8 f01, out Raw8 f10, out Raw8 f11)
        where TW : struct, IWeightView
    {
        int k0 = slice * SliceK + 8 * t, k1 = k0 + SliceK;
        bool in0 = slice < end && k0 < k, in1 = slice + 1 < end && k1 < k;
        f00 = Zeroed(w.Fetch8(w0 + (in0 ? k0 : 0)), in0);
        f01 = Zeroed(w.Fetch8(w1 + (in0 ? k0 : 0)), in0);
        f10 = Zeroed(w.Fetch8(w0 + (in1 ? k1 : 0)), in1);
        f11 = Zeroed(w.Fetch8(w1 + (in1 ? k1 : 0)), in1);
    }

    private static Raw8 Zeroed(Raw8 raw, bool keep) => keep ? raw : default;

    /// <summary>One 32-deep slice's fragments: the lane's A rows and the two columns' weights (the permuted k order above).</summary>
    private static WarpSlice Operands<TW, TMma>(TMma mma, ArrayView<Bits128> a, TW w, ARows rows, Raw8 column0, Raw8 column1, int slice, int t, int units, bool upper)
        where TW : struct, IWeightView where TMma : struct, IMma
    {
        int step = slice * (SliceK / 8);
        bool inside = step + t < units;
        Bits128 r0 = Row(a, rows.At0, step, inside), r8 = Row(a, rows.At8, step, inside);
        Bits128 r16 = default, r24 = default;
        if (upper)
        {
            r16 = Row(a, rows.At16, step, inside);
            r24 = Row(a, rows.At24, step, inside);
        }
        Bits128 b0 = Halves(mma, w, column0), b1 = Halves(mma, w, column1);
        return new WarpSlice
        {
            A00 = new AFragment { R0 = r0.X, R1 = r8.X, R2 = r0.Y, R3 = r8.Y },
            A01 = new AFragment { R0 = r0.Z, R1 = r8.Z, R2 = r0.W, R3 = r8.W },
            A10 = new AFragment { R0 = r16.X, R1 = r24.X, R2 = r16.Y, R3 = r24.Y },
            A11 = new AFragment { R0 = r16.Z, R1 = r24.Z, R2 = r16.W, R3 = r24.W },
            B00 = new BFragment { R0 = b0.X, R1 = b0.Y },
            B01 = new BFragment { R0 = b0.Z, R1 = b0.W },
            B10 = new BFragment { R0 = b1.X, R1 = b1.Y },
            B11 = new BFragment { R0 = b1.Z, R1 = b1.W },
        };
    }

    /// <summary>
    /// 8 fp16 values of an A row <paramref name="step"/> units on from its start; zeros for a row past M (start &lt; 0:
    /// unit 0 is read instead, in bounds) or past K (the load stays inside the buffer's last row).
    /// </summary>
    private static Bits128 Row(ArrayView<Bits128> a, int start, int step, bool inside)
    {
        bool keep = inside && start >= 0;
        var v = a[keep ? start + step : 0];
        return keep ? v : default;
    }

    /// <summary>Eight fetched weights as fp16 bits: as stored for fp16 weights, else widened and rounded as the instruction rounds A.</summary>
    private static Bits128 Halves<TW, TMma>(TMma mma, TW w, Raw8 raw) where TW : struct, IWeightView where TMma : struct, IMma
    {
        if (w.HalfStorage) return raw.Low;
        var v = w.Widen(raw);
        return new Bits128 { X = mma.Pack(v.V0, v.V1), Y = mma.Pack(v.V2, v.V3), Z = mma.Pack(v.V4, v.V5), W = mma.Pack(v.V6, v.V7) };
    }

    private static void Publish(ArrayView<float> partials, int at, WarpAccumulators acc)
    {
        Publish(partials, at, acc.C00); Publish(partials, at + 4, acc.C01); Publish(partials, at + 8, acc.C10); Publish(partials, at + 12, acc.C11);
    }

    private static void Publish(ArrayView<float> partials, int at, CFragment f)
    {
        partials[at] = f.R0; partials[at + 1] = f.R1; partials[at + 2] = f.R2; partials[at + 3] = f.R3;
    }

    private static void Add(ArrayView<float> partials, int at, ref WarpAccumulators acc)
    {
        acc.C00 = Add(partials, at, acc.C00); acc.C01 = Add(partials, at + 4, acc.C01);
        acc.C10 = Add(partials, at + 8, acc.C10); acc.C11 = Add(partials, at + 12, acc.C11);
    }

    private static CFragment Add(ArrayView<float> partials, int at, CFragment f) => new()
    {
        R0 = f.R0 + partials[at], R1 = f.R1 + partials[at + 1], R2 = f.R2 + partials[at + 2], R3 = f.R3 + partials[at + 3],
    };

    /// <summary>A fragment's four outputs: R0, R1 at (row, column), (row, column + 1); R2, R3 eight rows down.</summary>
    private static void Store(ArrayView<float> c, ArrayView<float> bias, MatMulArgs args, int row, int column, CFragment f)
    {
        args.Store(c, bias, row, column, f.R0);
        args.Store(c, bias, row, column + 1, f.R1);
        args.Store(c, bias, row + 8, column, f.R2);
        args.Store(c, bias, row + 8, column + 1, f.R3);
    }
}
