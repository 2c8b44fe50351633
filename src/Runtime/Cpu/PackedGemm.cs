using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// Weights packed for <see cref="PackedGemm"/>: W [n, k] (PyTorch layout) rearranged into panels of
/// <see cref="PackedGemm.PanelWidth"/> output columns, each panel [k, 32] contiguous (zero-padded past n).
/// Packing is done once, when the weights load.
/// </summary>
public sealed unsafe class PackedWeights : IDisposable
{
    public int N { get; }
    public int K { get; }
    public int Panels => (N + PackedGemm.PanelWidth - 1) / PackedGemm.PanelWidth;
    internal float* Data { get; private set; }

    public PackedWeights(float* w, int n, int k) : this(n, k)
    {
        // written in storage order (a transpose: strided reads, sequential writes), which is ~5x faster
        // than walking W row by row for the large tokenizer convs
        for (int panel = 0; panel < Panels; panel++)
        {
            int width = Math.Min(PackedGemm.PanelWidth, n - panel * PackedGemm.PanelWidth);
            float* src = w + (long)panel * PackedGemm.PanelWidth * k;
            float* dst = Data + (long)panel * k * PackedGemm.PanelWidth;
            for (int p = 0; p < k; p++, dst += PackedGemm.PanelWidth)
                for (int j = 0; j < width; j++) dst[j] = src[(long)j * k + p];
        }
    }

    /// <summary>Uninitialised except the padding past n; every W[col &lt; n, p] must be filled through <see cref="PanelRow"/>.</summary>
    public PackedWeights(int n, int k)
    {
        N = n; K = k;
        long size = (long)Panels * k * PackedGemm.PanelWidth;
        Data = (float*)NativeMemory.AlignedAlloc((nuint)(size * sizeof(float)), 64);
        // only the padding columns of the last panel need zeros: every caller fills columns < n
        int width = n - (Panels - 1) * PackedGemm.PanelWidth;
        if (width < PackedGemm.PanelWidth)
            for (int p = 0; p < k; p++) new Span<float>(PanelRow(Panels - 1, p) + width, PackedGemm.PanelWidth - width).Clear();
    }

    public long Bytes => (long)Panels * K * PackedGemm.PanelWidth * sizeof(float);

    /// <summary>The 32 values W[panel·32 .. panel·32 + 31, p], contiguous (for filling in storage order).</summary>
    public float* PanelRow(int panel, int p) => Data + ((long)panel * K + p) * PackedGemm.PanelWidth;

    public void Dispose()
    {
        if (Data == null) return;
        NativeMemory.AlignedFree(Data);
        Data = null;
    }
}

/// <summary>
/// C[m, n] (=|+=) A[m, k] · W[n, k]ᵀ + bias with W pre-packed (<see cref="PackedWeights"/>): the outer-product
/// form of BLIS-style kernels. An 8 x 32 register tile (16 Vector512 accumulators) takes, per k, two
/// panel loads and eight broadcasts of A for sixteen FMAs, with no horizontal reductions; k runs in
/// blocks of <see cref="KBlock"/> so the panel block stays in L1/L2 while the rows of A stream past.
/// Suited to many rows (conv im2col blocks, prefill); the dot-product <see cref="Gemm"/> remains for
/// weights used in place.
/// </summary>
public static unsafe class PackedGemm
{
    public const int PanelWidth = 32;
    public const int RowTile = 8;
    public const int KBlock = 384;

    /// <summary>
    /// Vector512 kernels where the hardware has them (or where nothing narrower is accelerated either); Vector256
    /// kernels on AVX2-only machines, where .NET runs Vector512 in software (K600 generation was 5x slower). A static
    /// readonly, so the JIT drops the other branch. Each output still accumulates over k in order, one FMA per k, so
    /// both kernels give bit-identical tiles.
    /// </summary>
    internal static readonly bool Wide = Vector512.IsHardwareAccelerated || !Vector256.IsHardwareAccelerated;

    /// <summary>Rows [row0, row0 + rows) of C for panel <paramref name="panel"/>.</summary>
    public static void ComputePanel(float* a, int lda, PackedWeights w, int panel, float* c, int ldc, int row0, int rows, float* bias, GemmStore store) =>
        ComputePanel(new SegmentedRows(a, lda, w.K, 0), w, panel, c, ldc, row0, rows, bias, store);

    /// <summary>
    /// Rows [row0, row0 + rows) of C for panel <paramref name="panel"/>, with A's K columns split into
    /// segments that live at different addresses (<see cref="SegmentedRows"/>).
    /// </summary>
    public static void ComputePanel(SegmentedRows a, PackedWeights w, int panel, float* c, int ldc, int row0, int rows, float* bias, GemmStore store)
    {
        int n0 = panel * PanelWidth;
        ComputePanel(a, w.Data + (long)panel * w.K * PanelWidth, w.K, Math.Min(PanelWidth, w.N - n0), c + n0, ldc, row0, rows, bias == null ? null : bias + n0, store);
    }

    /// <summary>
    /// The core: rows [row0, row0 + rows) of the <paramref name="width"/> (≤ 32) columns starting at
    /// <paramref name="c"/>, from one panel [k, 32] laid out as in <see cref="PackedWeights"/> (columns
    /// past <paramref name="width"/> are computed and dropped). For callers that pack a small operand
    /// themselves (the attention's query rows) without a <see cref="PackedWeights"/>.
    /// </summary>
    public static void ComputePanel(SegmentedRows a, float* panelData, int k, int width, float* c, int ldc, int row0, int rows, float* bias, GemmStore store)
    {
        if (k % a.SegmentK != 0) throw new ArgumentException($"K = {k} is not a whole number of {a.SegmentK}-column segments");
        Span<float> tile = stackalloc float[RowTile * PanelWidth];
        for (int r0 = row0; r0 < row0 + rows; r0 += RowTile)
        {
            int mr = Math.Min(RowTile, row0 + rows - r0);
            fixed (float* t = tile)
            {
                // initial tile: bias, plus the existing C when accumulating
                for (int r = 0; r < mr; r++)
                    for (int j = 0; j < PanelWidth; j++)
                        t[r * PanelWidth + j] = (bias == null || j >= width ? 0f : bias[j])
                                              + (store == GemmStore.Accumulate && j < width ? c[(long)(r0 + r) * ldc + j] : 0f);
                for (int s = 0; s < k / a.SegmentK; s++)
                {
                    float* rowsOfSegment = a.Segment(s) + (long)r0 * a.Lda;
                    for (int k0 = 0; k0 < a.SegmentK; k0 += KBlock)
                    {
                        int kc = Math.Min(KBlock, a.SegmentK - k0);
                        float* b = panelData + ((long)s * a.SegmentK + k0) * PanelWidth;
                        if (!Wide) Tiles256(rowsOfSegment + k0, a.Lda, b, kc, t, mr);
                        else if (mr == RowTile) Tile8(rowsOfSegment + k0, a.Lda, b, kc, t);
                        else TileRows(rowsOfSegment + k0, a.Lda, b, kc, t, mr);
                    }
                }
                for (int r = 0; r < mr; r++)
                    new ReadOnlySpan<float>(t + r * PanelWidth, width).CopyTo(new Span<float>(c + (long)(r0 + r) * ldc, width));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8(float* a, int lda, float* b, int kc, float* t)
    {
        var c00 = Vector512.Load(t); var c01 = Vector512.Load(t + 16);
        var c10 = Vector512.Load(t + 32); var c11 = Vector512.Load(t + 48);
        var c20 = Vector512.Load(t + 64); var c21 = Vector512.Load(t + 80);
        var c30 = Vector512.Load(t + 96); var c31 = Vector512.Load(t + 112);
        var c40 = Vector512.Load(t + 128); var c41 = Vector512.Load(t + 144);
        var c50 = Vector512.Load(t + 160); var c51 = Vector512.Load(t + 176);
        var c60 = Vector512.Load(t + 192); var c61 = Vector512.Load(t + 208);
        var c70 = Vector512.Load(t + 224); var c71 = Vector512.Load(t + 240);
        float* a0 = a, a1 = a + lda, a2 = a + 2L * lda, a3 = a + 3L * lda, a4 = a + 4L * lda, a5 = a + 5L * lda, a6 = a + 6L * lda, a7 = a + 7L * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b + p * PanelWidth);
            var b1 = Vector512.Load(b + p * PanelWidth + 16);
            var x = Vector512.Create(a0[p]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a1[p]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a2[p]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a3[p]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a4[p]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a5[p]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a6[p]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a7[p]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
        }
        c00.Store(t); c01.Store(t + 16); c10.Store(t + 32); c11.Store(t + 48);
        c20.Store(t + 64); c21.Store(t + 80); c30.Store(t + 96); c31.Store(t + 112);
        c40.Store(t + 128); c41.Store(t + 144); c50.Store(t + 160); c51.Store(t + 176);
        c60.Store(t + 192); c61.Store(t + 208); c70.Store(t + 224); c71.Store(t + 240);
    }

    /// <summary>
    /// The AVX2 form of <see cref="Tile8"/>: AVX2 has 16 vector registers, so the 8 x 32 tile goes in four 4 x 16
    /// quarters (8 accumulators, 2 panel loads, 1 broadcast live); a tail of fewer than 8 rows one row at a time.
    /// </summary>
    private static void Tiles256(float* a, int lda, float* b, int kc, float* t, int rows)
    {
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            Tile4x16(a + (long)r * lda, lda, b, kc, t + r * PanelWidth);
            Tile4x16(a + (long)r * lda, lda, b + 16, kc, t + r * PanelWidth + 16);
        }
        for (; r < rows; r++) Row256(a + (long)r * lda, b, kc, t + r * PanelWidth);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x16(float* a, int lda, float* b, int kc, float* t)
    {
        var c00 = Vector256.Load(t); var c01 = Vector256.Load(t + 8);
        var c10 = Vector256.Load(t + 32); var c11 = Vector256.Load(t + 40);
        var c20 = Vector256.Load(t + 64); var c21 = Vector256.Load(t + 72);
        var c30 = Vector256.Load(t + 96); var c31 = Vector256.Load(t + 104);
        float* a0 = a, a1 = a + lda, a2 = a + 2L * lda, a3 = a + 3L * lda;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b + p * PanelWidth);
            var b1 = Vector256.Load(b + p * PanelWidth + 8);
            var x = Vector256.Create(a0[p]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a1[p]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a2[p]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a3[p]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
        }
        c00.Store(t); c01.Store(t + 8); c10.Store(t + 32); c11.Store(t + 40);
        c20.Store(t + 64); c21.Store(t + 72); c30.Store(t + 96); c31.Store(t + 104);
    }

    private static void Row256(float* row, float* b, int kc, float* t)
    {
        var c0 = Vector256.Load(t); var c1 = Vector256.Load(t + 8); var c2 = Vector256.Load(t + 16); var c3 = Vector256.Load(t + 24);
        for (int p = 0; p < kc; p++)
        {
            var x = Vector256.Create(row[p]);
            float* panel = b + p * PanelWidth;
            c0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(panel), c0);
            c1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(panel + 8), c1);
            c2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(panel + 16), c2);
            c3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(panel + 24), c3);
        }
        c0.Store(t); c1.Store(t + 8); c2.Store(t + 16); c3.Store(t + 24);
    }

    /// <summary>Fewer than 8 rows (the tail of a block): one row at a time.</summary>
    private static void TileRows(float* a, int lda, float* b, int kc, float* t, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            var c0 = Vector512.Load(t + r * PanelWidth);
            var c1 = Vector512.Load(t + r * PanelWidth + 16);
            float* row = a + (long)r * lda;
            for (int p = 0; p < kc; p++)
            {
                var x = Vector512.Create(row[p]);
                c0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b + p * PanelWidth), c0);
                c1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b + p * PanelWidth + 16), c1);
            }
            c0.Store(t + r * PanelWidth);
            c1.Store(t + r * PanelWidth + 16);
        }
    }
}

/// <summary>Parallel <see cref="PackedGemm"/>: tasks are (panel, block of 64 rows). One per caller, reused.</summary>
public sealed unsafe class PackedMatMulJob : IParallelWork
{
    private const int RowsPerTask = 64;
    private float* _a, _bias, _c;
    private int _m, _lda, _ldc, _rowBlocks;
    private PackedWeights _w = null!;
    private GemmStore _store;
    private bool _gelu;

    /// <param name="gelu">apply GELU (erf form) to the result, as the MLP's first layer needs</param>
    public void Run(WorkerPool pool, float* a, int m, int lda, PackedWeights w, float* bias, float* c, int ldc, GemmStore store, bool gelu = false)
    {
        _a = a; _m = m; _lda = lda; _w = w; _bias = bias; _c = c; _ldc = ldc; _store = store; _gelu = gelu;
        _rowBlocks = (m + RowsPerTask - 1) / RowsPerTask;
        pool.Run(this, w.Panels * _rowBlocks);
    }

    public void Execute(int task, int worker)
    {
        int panel = task % _w.Panels, block = task / _w.Panels;
        int row0 = block * RowsPerTask, rows = Math.Min(RowsPerTask, _m - row0);
        PackedGemm.ComputePanel(_a, _lda, _w, panel, _c, _ldc, row0, rows, _bias, _store);
        if (!_gelu) return;
        int n0 = panel * PackedGemm.PanelWidth, width = Math.Min(PackedGemm.PanelWidth, _w.N - n0);
        for (int r = row0; r < row0 + rows; r++) Activations.GeluInPlace(_c + (long)r * _ldc + n0, width);
    }
}

/// <summary>
/// The A operand of a GEMM whose K columns come in equal segments stored apart: columns
/// [s·SegmentK, (s+1)·SegmentK) of row r are at <c>Base + s·SegmentStride + r·Lda</c>. One segment of
/// K columns is an ordinary matrix. Winograd convs use three: the same tile in three input frames.
/// </summary>
public readonly unsafe struct SegmentedRows(float* baseAddress, int lda, int segmentK, long segmentStride)
{
    public float* Base { get; } = baseAddress;
    public int Lda { get; } = lda;
    public int SegmentK { get; } = segmentK;
    public long SegmentStride { get; } = segmentStride;
    public float* Segment(int s) => Base + s * SegmentStride;
}
