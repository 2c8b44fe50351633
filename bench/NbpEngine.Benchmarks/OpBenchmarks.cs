using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Runtime.Threading;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Benchmarks;

/// <summary>Native buffers of random floats, freed with the benchmark class.</summary>
public abstract unsafe class NativeBench : IDisposable
{
    private readonly List<nint> _blocks = new();
    protected WorkerPool Pool { get; } = new(Environment.ProcessorCount);

    protected float* Random(long count, float scale = 1f, int seed = 1)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        _blocks.Add((nint)p);
        var rng = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return p;
    }

    /// <summary>Subclass resources, freed before the native buffers.</summary>
    protected virtual void Free() { }

    [GlobalCleanup]
    public void Dispose()
    {
        Free();
        foreach (var b in _blocks) NativeMemory.AlignedFree((void*)b);
        _blocks.Clear();
        Pool.Dispose();
    }
}

/// <summary>The linear layers at NBP-step (16 rows), NTP-step (1 row) and prefill (512 rows) shapes: dot-product GEMM on weights in place vs the packed GEMM.</summary>
public unsafe class MatMulBenchmarks : NativeBench
{
    [Params(1, 16, 512)] public int Rows;
    [Params(1536, 6144)] public int Out;
    private const int In = 1536;
    private float* _a, _w, _bias, _c;
    private PackedWeights _packed = null!;
    private readonly MatMulJob _dot = new();
    private readonly PackedMatMulJob _pack = new();

    [GlobalSetup]
    public void Setup()
    {
        _a = Random((long)Rows * In); _w = Random((long)Out * In, 0.02f); _bias = Random(Out); _c = Random((long)Rows * Out);
        _packed = new PackedWeights(_w, Out, In);
    }

    [Benchmark(Baseline = true, Description = "CPU dot-product GEMM (weights in place)")]
    public void Dot() => _dot.Run(Pool, _a, Rows, In, _w, Out, _bias, _c, Out, GemmStore.Overwrite);

    [Benchmark(Description = "CPU packed outer-product GEMM")]
    public void Packed() => _pack.Run(Pool, _a, Rows, In, _packed, _bias, _c, Out, GemmStore.Overwrite);
}

/// <summary>Attention of one layer (16 heads x 96): the 512-row block-causal prefill and a 16-row cached step over 1280 keys.</summary>
public unsafe class AttentionBenchmarks : NativeBench
{
    private const int Heads = 16, HeadSize = 96, Width = Heads * HeadSize;
    private float* _q, _k, _v, _o;
    private float* _scores;

    [GlobalSetup]
    public void Setup()
    {
        _q = Random(512L * Width); _k = Random(1296L * Width); _v = Random(1296L * Width); _o = Random(512L * Width);
        _scores = Random(CpuAttention.TileRows * 1296L);
    }

    private void Run(int rows, int start, AttentionMask mask)
    {
        Span<int> ends = stackalloc int[CpuAttention.TileRows];
        for (int h = 0; h < Heads; h++)
            for (int r0 = 0; r0 < rows; r0 += CpuAttention.TileRows)
            {
                int n = Math.Min(CpuAttention.TileRows, rows - r0);
                for (int r = 0; r < n; r++) ends[r] = mask.KeyEnd(start + r0 + r, start + rows);
                CpuAttention.Tile(_q + (long)r0 * Width + h * HeadSize, _k + h * HeadSize, _v + h * HeadSize, _o + (long)r0 * Width + h * HeadSize,
                    Width, HeadSize, n, ends[..n], _scores);
            }
    }

    [Benchmark(Description = "CPU prefill, 512 rows, block-causal B=16 (one thread)")]
    public void Prefill() => Run(512, 0, AttentionMask.BlockCausal(0, 16));

    [Benchmark(Description = "CPU cached step, 16 rows over 1280 keys (one thread)")]
    public void CachedStep() => Run(16, 1264, AttentionMask.None);
}

/// <summary>Row ops of a step and of a prefill: LayerNorm (C = 1536) and GELU (4C = 6144).</summary>
public unsafe class RowOpBenchmarks : NativeBench
{
    [Params(16, 512)] public int Rows;
    private float* _x, _w, _b, _y, _h;

    [GlobalSetup]
    public void Setup()
    {
        _x = Random(Rows * 1536L); _w = Random(1536); _b = Random(1536); _y = Random(Rows * 1536L); _h = Random(Rows * 6144L, 3f);
    }

    [Benchmark(Description = "CPU LayerNorm (one thread)")]
    public void LayerNormRows()
    {
        for (int r = 0; r < Rows; r++) LayerNorm.Row(_x + r * 1536L, _w, _b, _y + r * 1536L, 1536);
    }

    [Benchmark(Description = "CPU GELU, erf form (one thread)")]
    public void Gelu() => Activations.GeluInPlace(_h, Rows * 6144);
}

/// <summary>Sampling 16 rows over 64000 logits with the published settings (top-k 16000, top-p 0.9) and greedy.</summary>
public class SamplingBenchmarks
{
    private float[] _logits = null!;
    private readonly float[] _scaled = new float[64000];
    private readonly ulong[] _keys = new ulong[64000];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _logits = Enumerable.Range(0, 16 * 64000).Select(_ => (float)(rng.NextDouble() * 10)).ToArray();
    }

    [Benchmark(Description = "CPU top-k 16000 + top-p 0.9, 16 rows (one thread)")]
    public int Published()
    {
        int sum = 0;
        for (int r = 0; r < 16; r++) sum += RowSampler.Sample(_logits.AsSpan(r * 64000, 64000), SamplingSettings.Published, 0.5f, _scaled, _keys);
        return sum;
    }

    [Benchmark(Description = "CPU greedy, 16 rows (one thread)")]
    public int Greedy()
    {
        int sum = 0;
        for (int r = 0; r < 16; r++) sum += RowSampler.ArgMax(_logits.AsSpan(r * 64000, 64000));
        return sum;
    }
}

/// <summary>
/// A decoder conv stage: CausalConv3d(128 -> 128, 3) at 128x128 over 3 frames (the widest-resolution stage),
/// im2col GEMM vs Winograd F(4x4, 3x3).
/// </summary>
public unsafe class ConvBenchmarks : NativeBench
{
    private Conv3d _conv = null!;
    private Volume _x = null!, _y = null!;
    private TokenizerWorkspace _ws = null!, _winogradWs = null!;

    [GlobalSetup]
    public void Setup()
    {
        const int c = 128, k = 3;
        _conv = new Conv3d(c, c, k, k, k, (1, 1, 1), Random((long)c * c * k * k * k, 0.02f), Random(c));
        _x = new Volume(3, 128, 128, c);
        new Span<float>(_x.Data, (int)_x.Length).Fill(0.5f);
        _y = new Volume(3, 128, 128, c);
        _ws = new TokenizerWorkspace(Environment.ProcessorCount, c, ConvAlgorithm.Im2Col);
        _winogradWs = new TokenizerWorkspace(Environment.ProcessorCount, c, ConvAlgorithm.Winograd);
        _conv.Prepare(ConvAlgorithm.Im2Col, 128, 128);
        _conv.Prepare(ConvAlgorithm.Winograd, 128, 128);
    }

    [Benchmark(Baseline = true, Description = "CPU implicit-GEMM (im2col) conv3d 128->128 k3, 3 frames 128x128")]
    public void Conv() => _conv.Run(_ws, _x, _y, accumulate: false);

    [Benchmark(Description = "CPU Winograd F(4x4,3x3) conv3d 128->128 k3, 3 frames 128x128")]
    public void Winograd() => _conv.Run(_winogradWs, _x, _y, accumulate: false);

    protected override void Free()
    {
        _conv.ReleasePacked(); _x.Dispose(); _y.Dispose(); _ws.Dispose(); _winogradWs.Dispose();
    }
}

/// <summary>The same small matmul on the CPU backend and on the ILGPU CPU accelerator (emulated GPU: for scale, small shapes only).</summary>
public unsafe class IlgpuCpuBenchmarks : NativeBench
{
    private IlgpuDevice _device = null!;
    private AcceleratorStream _stream = null!;
    private KernelSet<F32Weights> _kernels = null!;
    private MemoryBuffer1D<float, Stride1D.Dense> _a = null!, _w = null!, _bias = null!, _c = null!;
    private float* _ha, _hw, _hb, _hc;
    private readonly MatMulJob _dot = new();

    [GlobalSetup]
    public void Setup()
    {
        _device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        _stream = _device.Accelerator.CreateStream();
        _kernels = new KernelSet<F32Weights>(_device.Accelerator);
        _ha = Random(16 * 96); _hw = Random(96 * 96); _hb = Random(96); _hc = Random(16 * 96);
        _a = Upload(_ha, 16 * 96); _w = Upload(_hw, 96 * 96); _bias = Upload(_hb, 96); _c = Upload(_hc, 16 * 96);
    }

    private MemoryBuffer1D<float, Stride1D.Dense> Upload(float* p, int n)
    {
        var b = _device.Accelerator.Allocate1D<float>(n);
        b.View.CopyFromCPU(_stream, new ReadOnlySpan<float>(p, n));
        return b;
    }

    [Benchmark(Baseline = true, Description = "CPU backend matmul 16x96x96")]
    public void Cpu() => _dot.Run(Pool, _ha, 16, 96, _hw, 96, _hb, _hc, 96, GemmStore.Overwrite);

    [Benchmark(Description = "ILGPU CPU accelerator matmul 16x96x96")]
    public void IlgpuCpu()
    {
        _kernels.MatMul(_stream, MatMulKernel.Launch(16, 96, 32), _a.View, new F32Weights(_w.View), _bias.View, _c.View,
            new MatMulArgs { M = 16, N = 96, K = 96, Lda = 96, Ldc = 96, HasBias = 1 });
        _stream.Synchronize();
    }

    protected override void Free()
    {
        _a.Dispose(); _w.Dispose(); _bias.Dispose(); _c.Dispose(); _stream.Dispose(); _device.Dispose();
    }
}
