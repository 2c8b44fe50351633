using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Kernels.TensorCores;
using NbpEngine.Core;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Parity;

/// <summary>
/// The backend parity suite (STYLE.md habit 2): one case per op and shape, random inputs, the ILGPU
/// kernel against the CPU backend. Written once, run per accelerator: xunit runs it on the CPU
/// accelerator in CI, tools/gpu on CUDA. fp32 bound: NMSE ≤ 1e-7; fp16/bf16-stored weights equal fp32
/// compute on the rounded weights (1e-7) and stay within 1e-5 / 1e-3 of the unrounded result.
/// </summary>
public sealed unsafe partial class KernelParity : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly AcceleratorStream _stream;
    private readonly List<MemoryBuffer> _buffers = new();
    private readonly KernelSet<F32Weights> _f32;
    private readonly KernelSet<F16Weights> _f16;
    private readonly KernelSet<BF16Weights> _bf16;

    /// <summary>Group size for the row kernels and the matmul in the default cases (the device's own).</summary>
    public int GroupSize { get; }

    public KernelParity(IlgpuDevice device)
    {
        _accelerator = device.Accelerator;
        _stream = _accelerator.CreateStream();
        GroupSize = device.Shape.GroupSize;
        _f32 = new KernelSet<F32Weights>(_accelerator);
        _f16 = new KernelSet<F16Weights>(_accelerator);
        _bf16 = new KernelSet<BF16Weights>(_accelerator);
    }

    /// <summary>Every case, by name; each runs with <see cref="Run"/>.</summary>
    public static IReadOnlyList<string> CaseNames { get; } = Cases().Select(c => c.Name).ToList();

    public ParityResult[] Run(string name) => Cases().Single(c => c.Name == name).Run(this);

    public IEnumerable<ParityResult> RunAll() => Cases().SelectMany(c => c.Run(this));

    private sealed record Case(string Name, Func<KernelParity, ParityResult[]> Run);

    private static IEnumerable<Case> Cases() => TransformerCases().Concat(TokenizerCases());

    private static IEnumerable<Case> TransformerCases()
    {
        foreach (var (rows, width, group) in new[] { (1, 96, 32), (5, 100, 32), (16, 7, 64) })
            yield return new($"embedding {rows}x{width} g{group}", p => [p.Embedding(rows, width, group)]);
        yield return new("embedding 9x100 g32, 8 uncond", p => [p.Embedding(9, 100, 32, unconditional: 8)]);
        foreach (var (count, t) in new[] { (1000, 1.5f), (4 * 1031, 0.25f) })
            yield return new($"guidance {count} t={t}", p => [p.Guidance(count, t)]);
        foreach (var (rows, width, group) in new[] { (1, 96, 32), (3, 1536, 32), (4, 7, 64), (17, 100, 64), (16, 1536, 256) })
            yield return new($"layernorm {rows}x{width} g{group}", p => [p.LayerNorm(rows, width, group)]);
        foreach (var (m, n, k, group, store, gelu) in new[]
                 {
                     (1, 96, 96, 32, 0, false), (16, 96, 96, 32, 1, false), (16, 384, 96, 32, 0, true), (5, 33, 70, 32, 0, false),
                     (17, 65, 129, 64, 1, true), (3, 500, 96, 64, 0, false), (16, 200, 300, 256, 1, true),
                 })
            yield return new($"matmul {m}x{n}x{k} g{group} {(store == 1 ? "acc" : "store")}{(gelu ? " gelu" : "")}", p => [p.MatMul(m, n, k, group, store, gelu)]);
        foreach (var (m, n, k) in new[] { (16, 96, 96), (5, 33, 70) })
            yield return new($"matmul half-stored {m}x{n}x{k}", p => p.MatMulHalfStored(m, n, k));
        foreach (var (m, n, k, lda, warps, store, gelu) in new[]
                 {
                     (64, 96, 96, 96, 1, 0, false), (70, 65, 100, 100, 2, 1, true), (128, 500, 96, 96, 4, 0, false), (100, 3, 64, 64, 4, 1, false),
                     (33, 40, 72, 75, 2, 0, true), (65, 17, 40, 44, 1, 0, false),
                 })
            yield return new($"tensor-core matmul {m}x{n}x{k} lda {lda} w{warps}", p => p.TensorCoreMatMul(m, n, k, lda, warps, store, gelu));
        yield return new("tensor-core matmul fp16-stored weights", p => [p.TensorCoreMatMulHalfStored(96, 64, 128)]);
        foreach (var (m, n, k, lda, group, store, gelu, splits) in StepShapes)
            yield return new($"step matmul {StepShapeName(m, n, k, lda, group, store, gelu, splits)}", p => p.StepMatMul(m, n, k, lda, group, store, gelu, splits));
        foreach (var (m, n, k, lda, group, store, gelu, splits) in StepShapes)
            yield return new($"step matmul + layernorm {StepShapeName(m, n, k, lda, group, store, gelu, splits)}", p => p.StepMatMulNormed(m, n, k, lda, group, store, gelu, splits));
        foreach (var (m, n, k, lda, group, store, gelu, splits, norm) in MmaShapes)
            yield return new($"step mma {MmaShapeName(m, n, k, lda, group, store, gelu, splits, norm)}", p => p.StepMma(m, n, k, lda, group, store, gelu, splits, norm));
        foreach (var (kind, prefix, block, start, rows, hd, q) in new[]
                 {
                     (MaskKind.BlockCausal, 0, 16, 0, 48, 24, 1), (MaskKind.BlockCausal, 0, 4, 0, 37, 96, 2), (MaskKind.BlockCausal, 7, 4, 0, 30, 16, 1),
                     (MaskKind.Hybrid, 5, 4, 0, 29, 24, 4), (MaskKind.None, 0, 1, 70, 16, 96, 1), (MaskKind.None, 0, 1, 100, 1, 128, 1),
                 })
            yield return new($"attention {kind} L{prefix} B{block} start {start} rows {rows} hd {hd} q{q}", p => [p.Attention(kind, prefix, block, start, rows, hd, q)]);
        yield return new("attention long cache 4001 keys", p => [p.AttentionLongCache()]);
        // decode attention: all rows of a head per group, keys split in chunks of 32 (one, several, a ragged last chunk); a
        // thread sums 4 dimensions of an output a quarter of the head apart, so head sizes 18 and 126 leave the last
        // quarter short
        foreach (var (start, rows, hd, heads, group) in new[]
                 {
                     (70, 16, 96, 2, 32), (100, 1, 128, 3, 32), (0, 5, 24, 2, 64), (63, 1, 16, 1, 32), (1264, 16, 64, 2, 128), (48, 16, 96, 4, 32),
                     (40, 16, 18, 2, 32), (33, 3, 126, 1, 64),
                 })
            yield return new($"decode attention start {start} rows {rows} hd {hd} heads {heads} g{group}", p => [p.DecodeAttention(start, rows, hd, heads, group)]);
        // (rows x steps draws). The filtered draws run on 1 to 256 groups a row (slices): the tokens must not depend on how a
        // row is spread. The CPU accelerator's cost grows with groups x barriers, so the many-sliced cases draw fewer
        foreach (var (greedy, t, k, topP, group, rows, steps, slices) in new[]
                 {
                     (true, 1f, 0, 1f, 32, 16, 8, 0), (false, 1f, 0, 1f, 32, 16, 8, 1), (false, 0.7f, 40, 1f, 32, 8, 4, 4), (false, 1f, 0, 0.8f, 32, 4, 4, 16),
                     (false, 1.3f, 60, 0.9f, 64, 1, 1, 256), (false, 1f, 300, 0.5f, 32, 8, 4, 2), (false, 1f, 16, 0.9f, 256, 2, 1, 8),
                 })
            yield return new($"sampling {(greedy ? "greedy" : $"T{t} k{k} p{topP} s{slices}")} g{group}", p => [p.Sampling(greedy, t, k, topP, group, rows, steps, slices)]);
        // a vocabulary of 4099: chunks of 17, the last 14 chunks empty; continuous logits, top-p only (the masses decide)
        yield return new("sampling T1 k0 p0.95 g32 V4099 s32", p => [p.Sampling(false, 1f, 0, 0.95f, 32, 2, 4, 32, vocab: 4099, grid: false)]);
        // logits of both signs (order-preserving keys on either side of the sign flip), top-k and top-p deciding; chunks of
        // 12, so the top-p levels stage a full and a partial tile of each
        yield return new("sampling T1 k50 p0.9 g64 V3000 signed s16", p => [p.Sampling(false, 1f, 50, 0.9f, 64, 2, 2, 16, vocab: 3000, grid: false, signed: true)]);
        // p just below 1: p·total can round to the total, when no key passes the search and nothing is cut
        yield return new("sampling T1 k0 p0.99999994 g32 s4", p => [p.Sampling(false, 1f, 0, 0.99999994f, 32, 4, 2, 4)]);
        // chunks of 2344, longer than the 2048 a walk stages at once: the chunk sums, the tie search and the draw each take
        // a chunk in several tiles; many ties (a 0.25 grid) at the cut
        yield return new("sampling T1 k7000 p0.7 g64 V600000 s2", p => [p.Sampling(false, 1f, 7000, 0.7f, 64, 1, 1, 2, vocab: 600000)]);
    }

    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    private ArrayView<T> Upload<T>(T[] data) where T : unmanaged
    {
        var buffer = _accelerator.Allocate1D<T>(Math.Max(data.Length, 1));
        _buffers.Add(buffer);
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(_stream, data);
        return buffer.View;
    }

    private T[] Download<T>(ArrayView<T> view, long count) where T : unmanaged
    {
        var result = new T[count];
        view.SubView(0, count).CopyToCPU(_stream, result);
        _stream.Synchronize();
        return result;
    }

    /// <param name="unconditional">leading rows that embed uncond_embedding rows instead of their ids (guidance's unconditional stream)</param>
    public ParityResult Embedding(int rows, int width, int group, int unconditional = 0)
    {
        const int vocab = 11, positions = 40, start = 9;
        var tok = Random(vocab * width, 1);
        var pos = Random(positions * width, 2);
        var uncond = Random(Math.Max(1, unconditional) * width, 3);
        var ids = Enumerable.Range(0, rows).Select(r => (r * 7) % vocab).ToArray();
        var x = Upload(new float[rows * width]);
        _f32.Embed(_stream, new KernelConfig(rows, group), Upload(ids), new F32Weights(Upload(tok)), new F32Weights(Upload(pos)), new F32Weights(Upload(uncond)), x,
            new EmbeddingArgs { Rows = rows, Width = width, StartPosition = start, UnconditionalRows = unconditional });
        var expected = new float[rows * width];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < width; c++)
                expected[r * width + c] = (r < unconditional ? uncond[r * width + c] : tok[ids[r] * width + c]) + pos[(start + r) * width + c];
        return new("embedding", $"{rows}x{width}{(unconditional > 0 ? $", {unconditional} uncond" : "")}", Nmse.Of(Download(x, rows * width), expected), 0);
    }

    /// <summary>The classifier-free guidance blend: the device's fused multiply-adds must equal Runtime's bit for bit (bound 0).</summary>
    public ParityResult Guidance(int count, float t)
    {
        var own = Random(count, 4);
        var unconditional = Random(count, 5);
        var device = Upload(own);
        _f32.Guide(_stream, new KernelConfig((count + 127) / 128, 128), device, Upload(unconditional), t);
        var result = Download(device, count);
        NbpEngine.Runtime.Sampling.Guidance.Blend(own, unconditional, t);
        int differing = result.Where((v, i) => BitConverter.SingleToInt32Bits(v) != BitConverter.SingleToInt32Bits(own[i])).Count();
        return new("guidance", $"{count} values, t = {t}", differing, 0, $"{differing} values differ in some bit");
    }

    public ParityResult LayerNorm(int rows, int width, int group)
    {
        var x = Random(rows * width, rows);
        for (int i = 0; i < x.Length; i++) x[i] += 3f;
        var w = Random(width, 2);
        var b = Random(width, 3);
        var y = Upload(new float[rows * width]);
        _f32.LayerNorm(_stream, new KernelConfig(rows, group), Upload(x), Upload(w), Upload(b), y, new LayerNormArgs { Rows = rows, Width = width });
        var expected = new float[rows * width];
        fixed (float* px = x, pw = w, pb = b, pe = expected)
            for (int r = 0; r < rows; r++) Runtime.Cpu.LayerNorm.Row(px + r * width, pw, pb, pe + r * width, width);
        return new("layernorm", $"{rows}x{width} g{group}", Nmse.Of(Download(y, rows * width), expected), Nmse.F32);
    }

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

    private static MatMulArgs Args(int m, int n, int k, int store, bool gelu) =>
        new() { M = m, N = n, K = k, Lda = k, Ldc = n, Accumulate = store, Gelu = gelu ? 1 : 0, HasBias = 1 };

    public ParityResult MatMul(int m, int n, int k, int group, int store, bool gelu)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var cv = Upload(c);
        _f32.MatMul(_stream, MatMulKernel.Launch(m, n, group), Upload(a), new F32Weights(Upload(w)), Upload(bias), cv, Args(m, n, k, store, gelu));
        return new("matmul", $"{m}x{n}x{k} g{group}", Nmse.Of(Download(cv, m * n), CpuMatMul(a, w, bias, c, m, n, k, store, gelu)), Nmse.F32);
    }

    public ParityResult[] MatMulHalfStored(int m, int n, int k)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var zero = new float[m * n];
        var exact = CpuMatMul(a, w, bias, zero, m, n, k, 0, false);

        var half = w.Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
        var outHalf = Upload(zero);
        _f16.MatMul(_stream, MatMulKernel.Launch(m, n, GroupSize), Upload(a), new F16Weights(Upload(half)), Upload(bias), outHalf, Args(m, n, k, 0, false));
        var f16 = Download(outHalf, m * n);

        var bf = w.Select(DeviceWeights<BF16Weights>.ToBFloat16).ToArray();
        var outBf = Upload(zero);
        _bf16.MatMul(_stream, MatMulKernel.Launch(m, n, GroupSize), Upload(a), new BF16Weights(Upload(bf)), Upload(bias), outBf, Args(m, n, k, 0, false));
        var bf16 = Download(outBf, m * n);
        string shape = $"{m}x{n}x{k}";
        return
        [
            new("matmul fp16 weights vs fp32 on rounded weights", shape, Nmse.Of(f16, CpuMatMul(a, RoundToHalf(w), bias, zero, m, n, k, 0, false)), Nmse.F32),
            new("matmul fp16 weights vs fp32 weights", shape, Nmse.Of(f16, exact), 1e-5),
            new("matmul bf16 weights vs fp32 on rounded weights", shape, Nmse.Of(bf16, CpuMatMul(a, bf.Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray(), bias, zero, m, n, k, 0, false)), Nmse.F32),
            new("matmul bf16 weights vs fp32 weights", shape, Nmse.Of(bf16, exact), 1e-3),
        ];
    }

    private static float[] RoundToHalf(float[] x) => x.Select(v => (float)(System.Half)v).ToArray();

    /// <summary>A random [m, lda] matrix (rows wider than k when lda &gt; k) and its first k columns packed densely, for the CPU reference.</summary>
    private static (float[] Strided, float[] Dense) StridedRows(int m, int k, int lda)
    {
        var a = Random(m * lda, 1);
        var dense = new float[m * k];
        for (int r = 0; r < m; r++) Array.Copy(a, r * lda, dense, r * k, k);
        return (a, dense);
    }

    /// <summary>
    /// Tensor-core matmul (mma.sync on CUDA, the lane-exact emulation here): equal to fp32 compute on the
    /// fp16-rounded operands up to accumulation order, within 1e-5 of fp32 on the unrounded operands. A's rows
    /// <paramref name="lda"/> apart (lda ≠ k and odd depths take the scalar loads).
    /// </summary>
    public ParityResult[] TensorCoreMatMul(int m, int n, int k, int lda, int warps, int store, bool gelu)
    {
        var (a, dense) = StridedRows(m, k, lda);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var cv = Upload(c);
        var av = Upload(a);
        var args = Args(m, n, k, store, gelu);
        args.Lda = lda;
        _f32.TensorCoreMatMul(_stream, MmaTile.Launch(m, n, warps), av, TensorCoreMatMulKernel.Vectors(av), new F32Weights(Upload(w)), Upload(bias), cv, args);
        var result = Download(cv, m * n);
        string shape = $"{m}x{n}x{k} lda {lda} w{warps}";
        return
        [
            new("tensor-core matmul vs fp32 on fp16-rounded operands", shape, Nmse.Of(result, CpuMatMul(RoundToHalf(dense), RoundToHalf(w), bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("tensor-core matmul vs fp32", shape, Nmse.Of(result, CpuMatMul(dense, w, bias, c, m, n, k, store, gelu)), 1e-5),
        ];
    }

    /// <summary>Tensor cores reading fp16-stored weights: the same product as fp32 compute on the rounded operands.</summary>
    public ParityResult TensorCoreMatMulHalfStored(int m, int n, int k)
    {
        var a = Random(m * k, 5);
        var w = Random(n * k, 6);
        var bias = Random(n, 7);
        var c = Upload(new float[m * n]);
        var av = Upload(a);
        var halves = w.Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
        _f16.TensorCoreMatMul(_stream, MmaTile.Launch(m, n, 2), av, TensorCoreMatMulKernel.Vectors(av), new F16Weights(Upload(halves)), Upload(bias), c, Args(m, n, k, 0, false));
        return new("tensor-core matmul fp16 weights vs fp32 on rounded operands", $"{m}x{n}x{k}",
            Nmse.Of(Download(c, m * n), CpuMatMul(RoundToHalf(a), RoundToHalf(w), bias, new float[m * n], m, n, k, 0, false)), Nmse.F32);
    }

    public ParityResult Attention(MaskKind kind, int prefix, int block, int start, int rows, int headSize, int queryRows)
    {
        const int heads = 2;
        int width = heads * headSize, total = start + rows;
        var q = Random(rows * width, 1, 2f);
        var k = Random(total * width, 2, 2f);
        var v = Random(total * width, 3);
        var output = Upload(new float[rows * width]);
        _f32.Attention(_stream, new KernelConfig(heads * ((rows + queryRows - 1) / queryRows), 32 * queryRows), Upload(q), Upload(k), Upload(v), output,
            new AttentionArgs
            {
                Rows = rows, Heads = heads, HeadSize = headSize, Width = width, InputStride = width, Start = start,
                MaskKind = (int)kind, Prefix = prefix, Block = block, Scale = 1f / MathF.Sqrt(headSize),
            });
        var expected = CpuAttentionOf(q, k, v, rows, heads, headSize, start, new AttentionMask(kind, prefix, block));
        return new("attention", $"{kind} L{prefix} B{block} start {start} rows {rows} hd {headSize}", Nmse.Of(Download(output, rows * width), expected), Nmse.F32);
    }

    /// <summary>A cache far longer than a key tile, one query: many tiles of online softmax, no mask anywhere.</summary>
    public ParityResult AttentionLongCache()
    {
        const int headSize = 64, start = 4000, rows = 1;
        var q = Random(headSize, 5, 3f);
        var k = Random((start + rows) * headSize, 6, 3f);
        var v = Random((start + rows) * headSize, 7);
        var output = Upload(new float[headSize]);
        _f32.Attention(_stream, new KernelConfig(1, 32), Upload(q), Upload(k), Upload(v), output,
            new AttentionArgs { Rows = rows, Heads = 1, HeadSize = headSize, Width = headSize, InputStride = headSize, Start = start, MaskKind = MaskMath.None, Scale = 0.125f });
        var expected = CpuAttentionOf(q, k, v, rows, 1, headSize, start, AttentionMask.None);
        return new("attention", "long cache 4001 keys", Nmse.Of(Download(output, headSize), expected), Nmse.F32);
    }

    /// <summary>The split-key step attention (partial + combine) against the CPU attention with no mask.</summary>
    public ParityResult DecodeAttention(int start, int rows, int headSize, int heads, int group)
    {
        int width = heads * headSize, total = start + rows, chunks = DecodeAttentionKernel.Chunks(total);
        var q = Random(rows * width, 11, 2f);
        var k = Random(total * width, 12, 2f);
        var v = Random(total * width, 13);
        var output = Upload(new float[rows * width]);
        var args = new AttentionArgs { Rows = rows, Heads = heads, HeadSize = headSize, Width = width, InputStride = width, Start = start, MaskKind = (int)MaskKind.None, Scale = 1f / MathF.Sqrt(headSize) };
        var partialOutput = Upload(new float[heads * chunks * rows * headSize]);
        var partialStats = Upload(new float[heads * chunks * rows * 2]);
        _f32.DecodeAttention(_stream, DecodeAttentionKernel.PartialGrid(args, group), Upload(q), Upload(k), Upload(v), partialOutput, partialStats, args);
        _f32.DecodeAttentionCombine(_stream, DecodeAttentionKernel.CombineGrid(args, group), partialOutput, partialStats, output, args);
        var expected = CpuAttentionOf(q, k, v, rows, heads, headSize, start, AttentionMask.None);
        return new("decode attention", $"start {start} rows {rows} hd {headSize} heads {heads} ({chunks} chunks)", Nmse.Of(Download(output, rows * width), expected), Nmse.F32);
    }

    private static float[] CpuAttentionOf(float[] q, float[] k, float[] v, int rows, int heads, int headSize, int start, AttentionMask mask)
    {
        int width = heads * headSize, total = start + rows;
        var expected = new float[rows * width];
        var ends = Enumerable.Range(0, rows).Select(r => mask.KeyEnd(start + r, total)).ToArray();
        var scores = new float[Math.Max(rows, CpuAttention.TileRows) * total];
        fixed (float* pq = q, pk = k, pv = v, pe = expected, ps = scores)
            for (int h = 0; h < heads; h++)
                CpuAttention.Tile(pq + h * headSize, pk + h * headSize, pv + h * headSize, pe + h * headSize, width, headSize, rows, ends, ps);
        return expected;
    }

    /// <summary>Identical logits and seed: the device draws the same tokens as the CPU sampler (mismatches counted).</summary>
    /// <param name="grid">logits on a 0.25 grid (many exact ties, at the top-k threshold and at the top-p cut too), else continuous</param>
    /// <param name="signed">logits in [-6, 6) instead of [0, 12)</param>
    public ParityResult Sampling(bool greedy, float temperature, int topK, float topP, int group, int rows, int steps, int slices, int vocab = 500,
        bool grid = true, bool signed = false)
    {
        var rng = new Random(topK + (int)(topP * 10) + group);
        float offset = signed ? -6f : 0f;
        var logits = Enumerable.Range(0, rows * vocab)
            .Select(_ => offset + (grid ? MathF.Round((float)rng.NextDouble() * 24f) / 4f : (float)rng.NextDouble() * 12f)).ToArray();
        var settings = new SamplingSettings(greedy, temperature, topK, topP);
        var scaledScratch = new float[vocab];
        var keys = new ulong[vocab];
        var views = new SamplerViews
        {
            Logits = Upload(logits), Scaled = Upload(new float[rows * vocab]), Weights = Upload(new float[rows * vocab]),
            Sums = Upload(new float[rows * SamplerViews.SumsPerRow]), State = Upload(new int[rows * SamplerViews.StatePerRow]), Tokens = Upload(new int[rows]),
        };
        int mismatches = 0, draws = 0;
        string first = "";
        for (int step = 0; step < steps; step++)
        {
            _f32.Sampler.Sample(_stream, rows, group, _accelerator.NumMultiprocessors, views, new SamplingArgs
            {
                Vocab = vocab, Greedy = greedy ? 1 : 0, Temperature = temperature, TopK = topK, TopP = topP, Seed = 99, Step = step, Slices = slices,
            });
            var device = Download(views.Tokens, rows);
            for (int r = 0; r < rows; r++, draws++)
            {
                int cpu = RowSampler.Sample(logits.AsSpan(r * vocab, vocab), settings, CounterRandom.Uniform(99, step, r), scaledScratch, keys);
                if (cpu == device[r]) continue;
                if (mismatches++ == 0) first = $"first at step {step} row {r}: device {device[r]}, cpu {cpu}";
            }
        }
        return new("sampling", $"{settings} g{group} s{slices}", mismatches, 0, $"{draws} draws {first}".Trim());
    }

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
        _stream.Dispose();
    }
}
