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

    public PackedWeights(float* w, int n, int k)
    {
        N = n; K = k;
        long size = (long)Panels * k * PackedGemm.PanelWidth;
        Data = (float*)NativeMemory.AlignedAlloc((nuint)(size * sizeof(float)), 64);
        NativeMemory.Clear(Data, (nuint)(size * sizeof(float)));
        for (int col = 0; col < n; col++)
        {
            float* panel = Data + (long)(col / PackedGemm.PanelWidth) * k * PackedGemm.PanelWidth + col % PackedGemm.PanelWidth;
            for (int p = 0; p < k; p++) panel[(long)p * PackedGemm.PanelWidth] = w[(long)col * k + p];
        }
    }

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

    /// <summary>Rows [row0, row0 + rows) of C for panel <paramref name="panel"/>.</summary>
    public static void ComputePanel(float* a, int lda, PackedWeights w, int panel, float* c, int ldc, int row0, int rows, float* bias, GemmStore store)
    {
        int n0 = panel * PanelWidth, width = Math.Min(PanelWidth, w.N - n0);
        float* panelData = w.Data + (long)panel * w.K * PanelWidth;
        Span<float> tile = stackalloc float[RowTile * PanelWidth];
        for (int r0 = row0; r0 < row0 + rows; r0 += RowTile)
        {
            int mr = Math.Min(RowTile, row0 + rows - r0);
            fixed (float* t = tile)
            {
                // initial tile: bias, plus the existing C when accumulating
                for (int r = 0; r < mr; r++)
                    for (int j = 0; j < PanelWidth; j++)
                        t[r * PanelWidth + j] = (bias == null || j >= width ? 0f : bias[n0 + j])
                                              + (store == GemmStore.Accumulate && j < width ? c[(long)(r0 + r) * ldc + n0 + j] : 0f);
                for (int k0 = 0; k0 < w.K; k0 += KBlock)
                {
                    int kc = Math.Min(KBlock, w.K - k0);
                    if (mr == RowTile) Tile8(a + (long)r0 * lda + k0, lda, panelData + (long)k0 * PanelWidth, kc, t);
                    else TileRows(a + (long)r0 * lda + k0, lda, panelData + (long)k0 * PanelWidth, kc, t, mr);
                }
                for (int r = 0; r < mr; r++)
                    new ReadOnlySpan<float>(t + r * PanelWidth, width).CopyTo(new Span<float>(c + (long)(r0 + r) * ldc + n0, width));
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

    public void Run(WorkerPool pool, float* a, int m, int lda, PackedWeights w, float* bias, float* c, int ldc, GemmStore store)
    {
        _a = a; _m = m; _lda = lda; _w = w; _bias = bias; _c = c; _ldc = ldc; _store = store;
        _rowBlocks = (m + RowsPerTask - 1) / RowsPerTask;
        pool.Run(this, w.Panels * _rowBlocks);
    }

    public void Execute(int task, int worker)
    {
        int panel = task % _w.Panels, block = task / _w.Panels;
        int row0 = block * RowsPerTask;
        PackedGemm.ComputePanel(_a, _lda, _w, panel, _c, _ldc, row0, Math.Min(RowsPerTask, _m - row0), _bias, _store);
    }
}
