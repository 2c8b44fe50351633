using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Kernels.Shared;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Sampling;
using Half = ILGPU.Half;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// Each ILGPU kernel against the CPU backend (the reference), on ILGPU's CPU accelerator with a warp
/// of 32: random inputs, several shapes including odd ones, NMSE ≤ 1e-7 for fp32. Group sizes 32
/// (what the CPU accelerator runs) and 64 (covers the multi-warp paths CUDA uses) where it matters.
/// </summary>
public unsafe class KernelParityTests(IlgpuFixture gpu) : IClassFixture<IlgpuFixture>
{
    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    [Theory]
    [InlineData(1, 96, 32)]
    [InlineData(5, 100, 32)]
    [InlineData(16, 7, 64)]
    public void Embedding(int rows, int width, int group)
    {
        const int vocab = 11, positions = 40, start = 9;
        var tok = Random(vocab * width, 1);
        var pos = Random(positions * width, 2);
        var ids = Enumerable.Range(0, rows).Select(r => (r * 7) % vocab).ToArray();
        var x = gpu.Upload(new float[rows * width]);
        gpu.F32.Embed(gpu.Stream, new KernelConfig(rows, group), gpu.Upload(ids), new F32Weights(gpu.Upload(tok)), new F32Weights(gpu.Upload(pos)), x,
            new EmbeddingArgs { Rows = rows, Width = width, StartPosition = start });
        var expected = new float[rows * width];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < width; c++) expected[r * width + c] = tok[ids[r] * width + c] + pos[(start + r) * width + c];
        Assert.Equal(expected, gpu.Download(x, rows * width));
    }

    [Theory]
    [InlineData(1, 96, 32)]
    [InlineData(3, 1536, 32)]
    [InlineData(4, 7, 64)]
    [InlineData(17, 100, 64)]
    public void LayerNormMatchesCpu(int rows, int width, int group)
    {
        var x = Random(rows * width, rows);
        for (int i = 0; i < x.Length; i++) x[i] += 3f;
        var w = Random(width, 2);
        var b = Random(width, 3);
        var y = gpu.Upload(new float[rows * width]);
        gpu.F32.LayerNorm(gpu.Stream, new KernelConfig(rows, group), gpu.Upload(x), gpu.Upload(w), gpu.Upload(b), y, new LayerNormArgs { Rows = rows, Width = width });
        var expected = new float[rows * width];
        fixed (float* px = x, pw = w, pb = b, pe = expected)
            for (int r = 0; r < rows; r++) LayerNorm.Row(px + r * width, pw, pb, pe + r * width, width);
        Nmse.AtMost(Nmse.F32, gpu.Download(y, rows * width), expected, $"layernorm {rows}x{width}");
    }

    public static TheoryData<int, int, int, int, int, bool> MatMulCases => new()
    {
        // m, n, k, group, store (0 overwrite / 1 accumulate), gelu
        { 1, 96, 96, 32, 0, false },
        { 16, 96, 96, 32, 1, false },
        { 16, 384, 96, 32, 0, true },
        { 5, 33, 70, 32, 0, false },
        { 17, 65, 129, 64, 1, true },
        { 3, 500, 96, 64, 0, false },
    };

    private static float[] CpuMatMul(float[] a, float[] w, float[] bias, float[] c, int m, int n, int k, int store, bool gelu)
    {
        var result = c.ToArray();
        var fresh = new float[m * n];
        fixed (float* pa = a, pw = w, pb = bias, pf = fresh)
            Gemm.Compute(pa, k, pw, k, pf, n, m, n, k, pb, GemmStore.Overwrite);
        for (int i = 0; i < fresh.Length; i++)
        {
            float v = gelu ? Activations.Gelu(fresh[i]) : fresh[i];
            result[i] = store == 1 ? result[i] + v : v;
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(MatMulCases))]
    public void MatMulF32MatchesCpu(int m, int n, int k, int group, int store, bool gelu)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var cv = gpu.Upload(c);
        gpu.F32.MatMul(gpu.Stream, Grid(m, n, group), gpu.Upload(a), new F32Weights(gpu.Upload(w)), gpu.Upload(bias), cv, Args(m, n, k, store, gelu));
        Nmse.AtMost(Nmse.F32, gpu.Download(cv, m * n), CpuMatMul(a, w, bias, c, m, n, k, store, gelu), $"matmul {m}x{n}x{k}");
    }

    /// <summary>
    /// fp16/bf16-stored weights: equal (NMSE ≤ 1e-7) to fp32 compute on the same rounded weights, since
    /// accumulation is fp32; against the unrounded weights the stated tolerances are 1e-5 (fp16) and 1e-3 (bf16).
    /// </summary>
    [Theory]
    [InlineData(16, 96, 96)]
    [InlineData(5, 33, 70)]
    public void MatMulHalfStoredWeights(int m, int n, int k)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var zero = new float[m * n];
        var exact = CpuMatMul(a, w, bias, zero, m, n, k, 0, false);

        var half = w.Select(v => (Half)v).ToArray();
        var halfRounded = half.Select(h => (float)h).ToArray();
        var outHalf = gpu.Upload(zero);
        gpu.F16.MatMul(gpu.Stream, Grid(m, n, 32), gpu.Upload(a), new F16Weights(gpu.Upload(half)), gpu.Upload(bias), outHalf, Args(m, n, k, 0, false));
        var f16 = gpu.Download(outHalf, m * n);
        Nmse.AtMost(Nmse.F32, f16, CpuMatMul(a, halfRounded, bias, zero, m, n, k, 0, false), "fp16 weights vs fp32 on the rounded weights");
        Nmse.AtMost(1e-5, f16, exact, "fp16 weights vs fp32 weights");

        var bf = w.Select(DeviceWeights<BF16Weights>.ToBFloat16).ToArray();
        var bfRounded = bf.Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray();
        var outBf = gpu.Upload(zero);
        gpu.BF16.MatMul(gpu.Stream, Grid(m, n, 32), gpu.Upload(a), new BF16Weights(gpu.Upload(bf)), gpu.Upload(bias), outBf, Args(m, n, k, 0, false));
        var bf16 = gpu.Download(outBf, m * n);
        Nmse.AtMost(Nmse.F32, bf16, CpuMatMul(a, bfRounded, bias, zero, m, n, k, 0, false), "bf16 weights vs fp32 on the rounded weights");
        Nmse.AtMost(1e-3, bf16, exact, "bf16 weights vs fp32 weights");
    }

    /// <summary>
    /// The tensor-core matmul's plain branch (what runs without CudaAsm) equals fp32 compute on the
    /// fp16-rounded operands; against unrounded fp32 the stated tolerance is 1e-5. Its mma.sync branch
    /// needs a GPU: tools/gpu runs the same comparison there.
    /// </summary>
    [Theory]
    [InlineData(64, 96, 96, 1, 0, false)]
    [InlineData(70, 65, 100, 2, 1, true)]
    [InlineData(128, 500, 96, 4, 0, false)]
    public void TensorCoreMatMulMatchesCpuOnHalfRoundedOperands(int m, int n, int k, int warps, int store, bool gelu)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var cv = gpu.Upload(c);
        int tilesN = (n + TensorCoreMatMulKernel.TileN - 1) / TensorCoreMatMulKernel.TileN;
        int tilesM = (m + TensorCoreMatMulKernel.WarpTileM * warps - 1) / (TensorCoreMatMulKernel.WarpTileM * warps);
        gpu.F32.TensorCoreMatMul(gpu.Stream, new KernelConfig(tilesN * tilesM, warps * 32), gpu.Upload(a), new F32Weights(gpu.Upload(w)), gpu.Upload(bias), cv, Args(m, n, k, store, gelu));
        var result = gpu.Download(cv, m * n);
        static float[] Round(float[] x) => x.Select(v => (float)(Half)v).ToArray();
        Nmse.AtMost(Nmse.F32, result, CpuMatMul(Round(a), Round(w), bias, c, m, n, k, store, gelu), "tensor-core matmul vs fp32 on fp16-rounded operands");
        Nmse.AtMost(1e-5, result, CpuMatMul(a, w, bias, c, m, n, k, store, gelu), "tensor-core matmul vs fp32");
    }

    private static KernelConfig Grid(int m, int n, int group) =>
        new(((n + MatMulKernel.TileN - 1) / MatMulKernel.TileN) * ((m + MatMulKernel.TileM - 1) / MatMulKernel.TileM), group);

    private static MatMulArgs Args(int m, int n, int k, int store, bool gelu) =>
        new() { M = m, N = n, K = k, Lda = k, Ldc = n, Accumulate = store, Gelu = gelu ? 1 : 0, HasBias = 1 };

    public static TheoryData<MaskKind, int, int, int, int, int, int> AttentionCases => new()
    {
        // mask, prefix, block, start, rows, headSize, queryRows (warps per group)
        { MaskKind.BlockCausal, 0, 16, 0, 48, 24, 1 },  // frame-prediction prefill, B = 16
        { MaskKind.BlockCausal, 0, 4, 0, 37, 96, 2 },   // B = 4, odd length, 2 warps per group
        { MaskKind.BlockCausal, 7, 4, 0, 30, 16, 1 },   // condition prefix
        { MaskKind.Hybrid, 5, 4, 0, 29, 24, 4 },        // UCF hybrid
        { MaskKind.None, 0, 1, 70, 16, 96, 1 },         // cached NBP step: 16 rows after 70 cached
        { MaskKind.None, 0, 1, 100, 1, 128, 1 },        // cached NTP step, largest head
    };

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void FlashAttentionMatchesCpu(MaskKind kind, int prefix, int block, int start, int rows, int headSize, int queryRows)
    {
        const int heads = 2;
        int width = heads * headSize, total = start + rows;
        var q = Random(rows * width, 1, 2f);
        var k = Random(total * width, 2, 2f);
        var v = Random(total * width, 3);
        var mask = new AttentionMask(kind, prefix, block);
        var output = gpu.Upload(new float[rows * width]);
        gpu.F32.Attention(gpu.Stream, new KernelConfig(heads * ((rows + queryRows - 1) / queryRows), 32 * queryRows), gpu.Upload(q), gpu.Upload(k), gpu.Upload(v), output,
            new AttentionArgs
            {
                Rows = rows, Heads = heads, HeadSize = headSize, Width = width, Start = start,
                MaskKind = (int)kind, Prefix = prefix, Block = block, Scale = 1f / MathF.Sqrt(headSize),
            });
        Nmse.AtMost(Nmse.F32, gpu.Download(output, rows * width), CpuAttentionOf(q, k, v, rows, heads, headSize, start, mask), $"{kind} attention");
    }

    /// <summary>A cache far longer than any key tile, one query: exercises many tiles of online softmax.</summary>
    [Fact]
    public void FlashAttentionOverALongCache()
    {
        const int heads = 1, headSize = 64, start = 4000, rows = 1;
        int total = start + rows;
        var q = Random(rows * headSize, 5, 3f);
        var k = Random(total * headSize, 6, 3f);
        var v = Random(total * headSize, 7);
        var output = gpu.Upload(new float[headSize]);
        gpu.F32.Attention(gpu.Stream, new KernelConfig(1, 32), gpu.Upload(q), gpu.Upload(k), gpu.Upload(v), output,
            new AttentionArgs { Rows = rows, Heads = heads, HeadSize = headSize, Width = headSize, Start = start, MaskKind = MaskMath.None, Scale = 0.125f });
        Nmse.AtMost(Nmse.F32, gpu.Download(output, headSize), CpuAttentionOf(q, k, v, rows, heads, headSize, start, AttentionMask.None), "4001-key cache");
    }

    private static float[] CpuAttentionOf(float[] q, float[] k, float[] v, int rows, int heads, int headSize, int start, AttentionMask mask)
    {
        int width = heads * headSize, total = start + rows;
        var expected = new float[rows * width];
        var ends = Enumerable.Range(0, rows).Select(r => mask.KeyEnd(start + r, total)).ToArray();
        var scores = new float[rows * total];
        fixed (float* pq = q, pk = k, pv = v, pe = expected, ps = scores)
            for (int h = 0; h < heads; h++)
                CpuAttention.Tile(pq + h * headSize, pk + h * headSize, pv + h * headSize, pe + h * headSize, width, headSize, rows, ends, ps);
        return expected;
    }

    public static TheoryData<bool, float, int, float, int> SamplingCases => new()
    {
        // greedy, temperature, top-k, top-p, group
        { true, 1f, 0, 1f, 32 },
        { false, 1f, 0, 1f, 32 },
        { false, 0.7f, 40, 1f, 32 },    // top-k with ties at the k-th value (logits are rounded)
        { false, 1f, 0, 0.8f, 32 },     // top-p alone
        { false, 1.3f, 60, 0.9f, 64 },  // all three, two warps
        { false, 1f, 300, 0.5f, 32 },
    };

    /// <summary>Identical logits and seed give identical tokens on the device and on the CPU sampler.</summary>
    [Theory]
    [MemberData(nameof(SamplingCases))]
    public void SamplingMatchesTheCpuSampler(bool greedy, float temperature, int topK, float topP, int group)
    {
        const int rows = 16, vocab = 500;
        var rng = new Random(topK + (int)(topP * 10));
        // values on a 0.25 grid: many exact ties, including at the top-k threshold and at the top-p cut
        var logits = Enumerable.Range(0, rows * vocab).Select(_ => MathF.Round((float)rng.NextDouble() * 24f) / 4f).ToArray();
        var settings = new SamplingSettings(greedy, temperature, topK, topP);
        var scaledScratch = new float[vocab];
        var keys = new ulong[vocab];
        var lv = gpu.Upload(logits);
        var scratch = gpu.Upload(new float[rows * vocab]);
        var tokens = gpu.Upload(new int[rows]);
        for (int step = 0; step < 8; step++)
        {
            gpu.F32.Sample(gpu.Stream, new KernelConfig(rows, group), lv, scratch, tokens, new SamplingArgs
            {
                Vocab = vocab, Greedy = greedy ? 1 : 0, Temperature = temperature, TopK = topK, TopP = topP, Seed = 99, Step = step,
            });
            var device = gpu.Download(tokens, rows);
            for (int r = 0; r < rows; r++)
            {
                int cpu = RowSampler.Sample(logits.AsSpan(r * vocab, vocab), settings, CounterRandom.Uniform(99, step, r), scaledScratch, keys);
                Assert.True(cpu == device[r], $"step {step} row {r}: device {device[r]}, cpu {cpu} ({settings})");
            }
        }
    }
}
