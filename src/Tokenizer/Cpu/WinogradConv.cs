using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// Runs a 3x3x3 stride-1 causal conv by Winograd F(4x4, 3x3) (see <see cref="WinogradF43"/>), a chunk of
/// output frames at a time so the transformed input V and the GEMM output M stay within the workspace's
/// budget: output frames [t0, t0 + n) need input frames t0 - 2 .. t0 + n - 1 (clamped at 0: the causal
/// replicate padding), transformed into V as n + 2 local frames; then output frame t0 + j, point ξ, is
/// one GEMM row block whose three K segments are local frames j, j + 1, j + 2 of V_ξ.
/// Spatial replicate padding is index clamping while gathering tiles; tiles past the edge are computed
/// and their extra outputs dropped.
/// </summary>
internal sealed unsafe class WinogradConv
{
    private const int Lanes = WinogradF43.Lanes;
    private readonly PackedWeights[] _u;
    private readonly float* _bias;
    public int InChannels { get; }
    public int OutChannels { get; }
    public long WeightBytes => _u.Sum(u => u.Bytes);

    /// <param name="weight">[cout, 3, 3, 3, cin]</param>
    public WinogradConv(float* weight, float* bias, int cin, int cout)
    {
        if (cin % Lanes != 0 || cout % Lanes != 0) throw new ArgumentException($"Winograd conv needs channel counts that are multiples of {Lanes}, found {cin} -> {cout}");
        InChannels = cin; OutChannels = cout; _bias = bias;
        _u = WinogradF43.TransformWeights(weight, cout, cin);
    }

    public void Dispose()
    {
        foreach (var u in _u) u.Dispose();
    }

    /// <summary>y = conv(x) or y += conv(x); shapes were checked by <see cref="Conv3d.Run"/>.</summary>
    public void Run(TokenizerWorkspace ws, Volume x, Volume y, GemmStore store)
    {
        var geometry = new TileGeometry(x.Height, x.Width);
        long vFrame = (long)WinogradF43.Points * geometry.Tiles * InChannels;
        long mFrame = (long)WinogradF43.Points * geometry.Tiles * OutChannels;
        // frames per chunk: the largest n with (n + 2)·vFrame + n·mFrame floats within the budget (at least 1)
        long budget = ws.WinogradBudgetBytes / sizeof(float);
        int chunk = (int)Math.Clamp((budget - 2 * vFrame) / (vFrame + mFrame), 1, y.Frames);
        float* v = ws.Scratch(TokenizerWorkspace.WinogradInputSlot, (chunk + 2) * vFrame);
        float* m = ws.Scratch(TokenizerWorkspace.WinogradOutputSlot, chunk * mFrame);
        var jobs = ws.Winograd;
        for (int t0 = 0; t0 < y.Frames; t0 += chunk)
        {
            int n = Math.Min(chunk, y.Frames - t0);
            jobs.Input.Run(ws.Pool, x, geometry, t0, n + 2, v);
            jobs.Gemm.Run(ws.Pool, _u, geometry, n, v, m);
            jobs.Output.Run(ws.Pool, m, geometry, n, _bias, y, t0, store);
        }
    }
}

/// <summary>How a frame splits into 4x4 output tiles (the last row/column of tiles may hang over).</summary>
internal readonly record struct TileGeometry(int Height, int Width)
{
    public int TilesH => (Height + WinogradF43.Tile - 1) / WinogradF43.Tile;
    public int TilesW => (Width + WinogradF43.Tile - 1) / WinogradF43.Tile;
    public int Tiles => TilesH * TilesW;
}

/// <summary>The three parallel phases of a Winograd conv; one set per workspace, reused by every conv.</summary>
internal sealed class WinogradJobs
{
    public WinogradInputJob Input { get; } = new();
    public WinogradGemmJob Gemm { get; } = new();
    public WinogradOutputJob Output { get; } = new();
}

/// <summary>V_ξ[local frame, tile, cin] = (Bᵀ d B)_ξ for every 6x6 input tile d; a task is one row of tiles of one frame.</summary>
internal sealed unsafe class WinogradInputJob : IParallelWork
{
    private const int Lanes = WinogradF43.Lanes;
    private Volume _x = null!;
    private TileGeometry _g;
    private int _t0;
    private float* _v;
    private long _plane;

    public void Run(WorkerPool pool, Volume x, TileGeometry geometry, int t0, int localFrames, float* v)
    {
        _x = x; _g = geometry; _t0 = t0; _v = v;
        _plane = (long)localFrames * geometry.Tiles * x.Channels;
        pool.Run(this, localFrames * geometry.TilesH);
    }

    public void Execute(int task, int worker)
    {
        int local = task / _g.TilesH, th = task % _g.TilesH;
        int frame = Math.Max(0, _t0 - 2 + local); // the causal replicate padding in time
        int cin = _x.Channels, height = _x.Height, width = _x.Width;
        float* frameData = _x.Frame(frame);
        float* columns = stackalloc float[WinogradF43.Points * Lanes]; // Bᵀ d, [row a][column b][lane]
        long* rowStart = stackalloc long[WinogradF43.Alpha];
        for (int a = 0; a < WinogradF43.Alpha; a++)
            rowStart[a] = (long)Math.Clamp(th * WinogradF43.Tile - 1 + a, 0, height - 1) * width * cin;
        int* col = stackalloc int[WinogradF43.Alpha];
        for (int tw = 0; tw < _g.TilesW; tw++)
        {
            for (int b = 0; b < WinogradF43.Alpha; b++) col[b] = Math.Clamp(tw * WinogradF43.Tile - 1 + b, 0, width - 1) * cin;
            float* output = _v + ((long)local * _g.Tiles + th * _g.TilesW + tw) * cin;
            for (int c0 = 0; c0 < cin; c0 += Lanes)
            {
                float* src = frameData + c0;
                for (int b = 0; b < WinogradF43.Alpha; b++)
                    WinogradF43.InputColumn(
                        Vector512.Load(src + rowStart[0] + col[b]), Vector512.Load(src + rowStart[1] + col[b]), Vector512.Load(src + rowStart[2] + col[b]),
                        Vector512.Load(src + rowStart[3] + col[b]), Vector512.Load(src + rowStart[4] + col[b]), Vector512.Load(src + rowStart[5] + col[b]),
                        columns + b * Lanes, WinogradF43.Alpha * Lanes);
                for (int a = 0; a < WinogradF43.Alpha; a++)
                {
                    float* r = columns + a * WinogradF43.Alpha * Lanes;
                    WinogradF43.InputColumn(
                        Vector512.Load(r), Vector512.Load(r + Lanes), Vector512.Load(r + 2 * Lanes),
                        Vector512.Load(r + 3 * Lanes), Vector512.Load(r + 4 * Lanes), Vector512.Load(r + 5 * Lanes),
                        output + a * WinogradF43.Alpha * _plane + c0, _plane);
                }
            }
        }
    }
}

/// <summary>M_ξ[j, tile, cout] = Σ_kt V_ξ[j + kt, tile, :] · U_ξ[kt]; tasks are (ξ, block of 64 rows, 32-column panel).</summary>
internal sealed unsafe class WinogradGemmJob : IParallelWork
{
    private const int RowsPerTask = 64;
    private PackedWeights[] _u = null!;
    private float* _v, _m;
    private int _rows, _rowBlocks, _panels, _tiles, _cin, _cout, _frames;

    public void Run(WorkerPool pool, PackedWeights[] u, TileGeometry geometry, int frames, float* v, float* m)
    {
        _u = u; _v = v; _m = m; _frames = frames;
        _tiles = geometry.Tiles;
        _cin = u[0].K / 3; _cout = u[0].N;
        _rows = frames * _tiles;
        _rowBlocks = (_rows + RowsPerTask - 1) / RowsPerTask;
        _panels = u[0].Panels;
        pool.Run(this, WinogradF43.Points * _rowBlocks * _panels);
    }

    public void Execute(int task, int worker)
    {
        int panel = task % _panels, rest = task / _panels;
        int block = rest % _rowBlocks, xi = rest / _rowBlocks;
        long segment = (long)_tiles * _cin;           // one local frame of V_ξ
        float* vPlane = _v + xi * (_frames + 2) * segment;
        float* mPlane = _m + (long)xi * _rows * _cout;
        int row0 = block * RowsPerTask;
        PackedGemm.ComputePanel(new SegmentedRows(vPlane, _cin, _cin, segment), _u[xi], panel, mPlane, _cout,
            row0, Math.Min(RowsPerTask, _rows - row0), null, GemmStore.Overwrite);
    }
}

/// <summary>y[t0 + j] (=|+=) Aᵀ M A + bias for every tile, dropping outputs past the frame's edge; a task is one row of tiles of one frame.</summary>
internal sealed unsafe class WinogradOutputJob : IParallelWork
{
    private const int Lanes = WinogradF43.Lanes;
    private float* _m, _bias;
    private TileGeometry _g;
    private Volume _y = null!;
    private int _t0;
    private long _plane;
    private GemmStore _store;

    public void Run(WorkerPool pool, float* m, TileGeometry geometry, int frames, float* bias, Volume y, int t0, GemmStore store)
    {
        _m = m; _g = geometry; _bias = bias; _y = y; _t0 = t0; _store = store;
        _plane = (long)frames * geometry.Tiles * y.Channels;
        pool.Run(this, frames * geometry.TilesH);
    }

    public void Execute(int task, int worker)
    {
        int local = task / _g.TilesH, th = task % _g.TilesH;
        int cout = _y.Channels, height = _y.Height, width = _y.Width;
        float* frame = _y.Frame(_t0 + local);
        float* columns = stackalloc float[WinogradF43.Tile * WinogradF43.Alpha * Lanes]; // Aᵀ m, [row i][column b][lane]
        int rows = Math.Min(WinogradF43.Tile, height - th * WinogradF43.Tile);
        for (int tw = 0; tw < _g.TilesW; tw++)
        {
            int cols = Math.Min(WinogradF43.Tile, width - tw * WinogradF43.Tile);
            float* input = _m + ((long)local * _g.Tiles + th * _g.TilesW + tw) * cout;
            for (int c0 = 0; c0 < cout; c0 += Lanes)
            {
                for (int b = 0; b < WinogradF43.Alpha; b++)
                {
                    float* p = input + b * _plane + c0; // point (a, b) lives in plane a·6 + b
                    long down = WinogradF43.Alpha * _plane;
                    WinogradF43.OutputColumn(Vector512.Load(p), Vector512.Load(p + down), Vector512.Load(p + 2 * down),
                        Vector512.Load(p + 3 * down), Vector512.Load(p + 4 * down), Vector512.Load(p + 5 * down),
                        out var s0, out var s1, out var s2, out var s3);
                    s0.Store(columns + b * Lanes);
                    s1.Store(columns + (WinogradF43.Alpha + b) * Lanes);
                    s2.Store(columns + (2 * WinogradF43.Alpha + b) * Lanes);
                    s3.Store(columns + (3 * WinogradF43.Alpha + b) * Lanes);
                }
                var bias = _bias == null ? Vector512<float>.Zero : Vector512.Load(_bias + c0);
                for (int i = 0; i < rows; i++)
                {
                    float* r = columns + i * WinogradF43.Alpha * Lanes;
                    WinogradF43.OutputColumn(Vector512.Load(r), Vector512.Load(r + Lanes), Vector512.Load(r + 2 * Lanes),
                        Vector512.Load(r + 3 * Lanes), Vector512.Load(r + 4 * Lanes), Vector512.Load(r + 5 * Lanes),
                        out var o0, out var o1, out var o2, out var o3);
                    float* dst = frame + ((long)(th * WinogradF43.Tile + i) * width + tw * WinogradF43.Tile) * cout + c0;
                    Store(dst, o0 + bias, 0, cols, cout);
                    Store(dst, o1 + bias, 1, cols, cout);
                    Store(dst, o2 + bias, 2, cols, cout);
                    Store(dst, o3 + bias, 3, cols, cout);
                }
            }
        }
    }

    private void Store(float* dst, Vector512<float> value, int j, int cols, int cout)
    {
        if (j >= cols) return;
        float* p = dst + (long)j * cout;
        if (_store == GemmStore.Accumulate) value += Vector512.Load(p);
        value.Store(p);
    }
}
