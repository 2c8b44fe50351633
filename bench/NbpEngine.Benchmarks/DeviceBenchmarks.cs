using BenchmarkDotNet.Attributes;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.TensorCores;
using NbpEngine.Kernels.Sampling;

namespace NbpEngine.Benchmarks;

/// <summary>
/// The ILGPU kernels on a CUDA GPU at the K600 shapes, with cuBLAS SGEMM (ILGPU.Algorithms) as the GEMM
/// baseline: matmul at the step (16 rows) and prefill (512 rows) shapes, tiled fp32 vs tensor-core
/// (mma.sync, fp16-rounded operands) vs cuBLAS; the cached-step attention (flash vs split-key) and the prefill
/// attention; sampling of 16 rows
/// over 64000. Program.cs includes this class only when a CUDA device is present. Every launch is
/// followed by a stream synchronize, so times are device times plus one launch round trip.
/// tests/NbpEngine.Tests/DeviceBenchmarkTests.cs runs each kernel method once on ILGPU's CPU
/// accelerator at small shapes, so the setup and launch code is exercised without a GPU.
/// </summary>
public class DeviceBenchmarks : IDisposable
{
    [Params(16, 512)] public int Rows { get; set; } = 16;
    [Params(1536, 6144)] public int Out { get; set; } = 1536;
    public int In { get; set; } = 1536;
    public int Heads { get; set; } = 16;
    public int Keys { get; set; } = 1280;
    public int Vocab { get; set; } = 64000;
    /// <summary>Cuda for the benchmarks; the test sets Cpu.</summary>
    public IlgpuDeviceKind Kind { get; set; } = IlgpuDeviceKind.Cuda;

    private IlgpuDevice _device = null!;
    private AcceleratorStream _stream = null!;
    private KernelSet<F32Weights> _kernels = null!;
    private CuBlas? _cublas;
    private readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _buffers = new();
    private ArrayView<float> _a, _w, _bias, _c, _query, _keys, _values, _attended, _logits, _scaled, _weights, _samplerSums, _partialOutput, _partialStats;
    private MemoryBuffer1D<int, Stride1D.Dense> _sampled = null!, _samplerState = null!;

    [GlobalSetup]
    public void Setup()
    {
        if (Kind == IlgpuDeviceKind.Cuda && !IlgpuDevice.CudaAvailable()) throw new InvalidOperationException("DeviceBenchmarks need a CUDA device");
        _device = new IlgpuDevice(Kind);
        _stream = _device.Accelerator.CreateStream();
        _kernels = new KernelSet<F32Weights>(_device.Accelerator);
        var rng = new Random(1);
        ArrayView<float> Buffer(long n, float scale)
        {
            var host = new float[n];
            for (long i = 0; i < n; i++) host[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
            var b = _device.Accelerator.Allocate1D(host);
            _buffers.Add(b);
            return b.View;
        }
        int rows = Math.Max(Rows, 16);
        _a = Buffer((long)rows * In, 1); _w = Buffer((long)Out * In, 0.02f); _bias = Buffer(Out, 0.1f); _c = Buffer((long)rows * Out, 0);
        int width = Heads * 96 > In ? In : Heads * 96;
        _query = Buffer((long)rows * width, 1); _keys = Buffer((long)Keys * width, 1); _values = Buffer((long)Keys * width, 1); _attended = Buffer((long)rows * width, 0);
        _partialOutput = Buffer((long)Heads * DecodeAttentionKernel.Chunks(Keys) * 16 * (width / Heads), 0);
        _partialStats = Buffer((long)Heads * DecodeAttentionKernel.Chunks(Keys) * 16 * 2, 0);
        _logits = Buffer(16L * Vocab, 3); _scaled = Buffer(16L * Vocab, 0); _weights = Buffer(16L * Vocab, 0);
        _sampled = _device.Accelerator.Allocate1D<int>(16);
        _samplerSums = Buffer(16L * SamplerViews.SumsPerRow, 0);
        _samplerState = _device.Accelerator.Allocate1D<int>(16L * SamplerViews.StatePerRow);
        if (_device.Accelerator is CudaAccelerator cuda)
        {
            _cublas = new CuBlas(cuda) { PointerMode = CuBlasPointerMode.Host, Stream = (CudaStream)_stream };
        }
        _stream.Synchronize();
    }

    private int Width => Heads * 96 > In ? In : Heads * 96;

    [Benchmark(Baseline = true, Description = "ILGPU tiled matmul (fp32)")]
    public void TiledMatMul()
    {
        _kernels.MatMul(_stream, MatMulKernel.Launch(Rows, Out, _device.Shape.GroupSize), _a, new F32Weights(_w), _bias, _c, new MatMulArgs { M = Rows, N = Out, K = In, Lda = In, Ldc = Out, HasBias = 1 });
        _stream.Synchronize();
    }

    [Benchmark(Description = "ILGPU tensor-core matmul (mma.sync, fp16 operands)")]
    public void TensorCoreMatMul()
    {
        _kernels.TensorCoreMatMul(_stream, MmaTile.Launch(Rows, Out, MmaTile.Warps(_device.Shape.GroupSize)), _a, TensorCoreMatMulKernel.Vectors(_a), new F32Weights(_w), _bias, _c,
            new MatMulArgs { M = Rows, N = Out, K = In, Lda = In, Ldc = Out, HasBias = 1 });
        _stream.Synchronize();
    }

    /// <summary>C[M, N] = A[M, K]·W[N, K]ᵀ in cuBLAS's column-major terms: Cᵀ (N x M) = op_T(W) (N x K) · Aᵀ (K x M). No bias.</summary>
    [Benchmark(Description = "cuBLAS SGEMM (no bias)")]
    public void CuBlasSgemm()
    {
        if (_cublas is null) throw new InvalidOperationException("cuBLAS needs the CUDA accelerator");
        _cublas.Gemm(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, Out, Rows, In, 1f, _w, In, _a, In, 0f, _c, Out);
        _stream.Synchronize();
    }

    [Benchmark(Description = "ILGPU attention, cached step: 16 rows over 1280 keys, 16 heads")]
    public void AttentionStep() => Attention(rows: 16, start: Keys - 16, maskKind: 0);

    [Benchmark(Description = "ILGPU split-key step attention (partial + combine): 16 rows over 1280 keys, 16 heads")]
    public void DecodeAttentionStep()
    {
        var args = new AttentionArgs
        {
            Rows = 16, Heads = Heads, HeadSize = Width / Heads, Width = Width, InputStride = Width, Start = Keys - 16, MaskKind = 0, Scale = 1f / MathF.Sqrt(Width / Heads),
        };
        int group = Math.Min(_device.Shape.GroupSize, 128);
        _kernels.DecodeAttention(_stream, DecodeAttentionKernel.PartialGrid(args, group), _query, _keys, _values, _partialOutput, _partialStats, args);
        _kernels.DecodeAttentionCombine(_stream, DecodeAttentionKernel.CombineGrid(args, _device.Shape.GroupSize), _partialOutput, _partialStats, _attended, args);
        _stream.Synchronize();
    }

    [Benchmark(Description = "ILGPU sampling: 16 rows x 64000, top-k 16000, top-p 0.9")]
    public void Sampling()
    {
        var views = new SamplerViews { Logits = _logits, Scaled = _scaled, Weights = _weights, Sums = _samplerSums, State = _samplerState.View, Tokens = _sampled.View };
        _kernels.Sampler.Sample(_stream, 16, Math.Min(_device.Shape.GroupSize, SamplingKernel.MaxGroupSize), _device.Accelerator.NumMultiprocessors, views,
            new SamplingArgs { Vocab = Vocab, Greedy = 0, Temperature = 1f, TopK = Math.Min(16000, Vocab), TopP = 0.9f, Seed = 1, Step = 0 });
        _stream.Synchronize();
    }

    private void Attention(int rows, int start, int maskKind)
    {
        int q = _device.Shape.AttentionQueryRows;
        _kernels.Attention(_stream, new KernelConfig(Heads * ((rows + q - 1) / q), q * 32), _query, _keys, _values, _attended,
            new AttentionArgs { Rows = rows, Heads = Heads, HeadSize = Width / Heads, Width = Width, InputStride = Width, Start = start, MaskKind = maskKind, Block = 16, Scale = 1f / MathF.Sqrt(Width / Heads) });
        _stream.Synchronize();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _cublas?.Dispose();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
        _sampled?.Dispose();
        _samplerState?.Dispose();
        _stream?.Dispose();
        _device?.Dispose();
        GC.SuppressFinalize(this);
    }
}
