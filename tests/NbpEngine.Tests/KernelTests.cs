using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tests;

/// <summary>The CPU kernels against plain double-precision loops, over sizes that hit every tail path.</summary>
public unsafe class KernelTests
{
    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    public static TheoryData<int, int, int> GemmShapes
    {
        get
        {
            var data = new TheoryData<int, int, int>();
            foreach (int m in new[] { 1, 3, 4, 5, 16, 17 })
                foreach (int n in new[] { 1, 4, 7, 33 })
                    foreach (int k in new[] { 1, 15, 16, 17, 96, 100 })
                        data.Add(m, n, k);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void GemmMatchesNaive(int m, int n, int k)
    {
        var a = Random(m * k, 1);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var accumulated = c.ToArray();
        var overwritten = new float[m * n];
        fixed (float* pa = a, pw = w, pb = bias, pc = accumulated, po = overwritten)
        {
            Gemm.Compute(pa, k, pw, k, po, n, m, n, k, pb, GemmStore.Overwrite);
            Gemm.Compute(pa, k, pw, k, pc, n, m, n, k, pb, GemmStore.Accumulate);
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double dot = bias[j];
                for (int p = 0; p < k; p++) dot += (double)a[i * k + p] * w[j * k + p];
                Assert.True(Math.Abs(overwritten[i * n + j] - dot) <= 1e-5 * (1 + Math.Abs(dot)), $"[{i},{j}] {overwritten[i * n + j]} vs {dot}");
                Assert.True(Math.Abs(accumulated[i * n + j] - (dot + c[i * n + j])) <= 1e-5 * (1 + Math.Abs(dot)), $"accumulate [{i},{j}]");
            }
    }

    [Fact]
    public void MatMulJobSplitsWorkWithoutChangingResults()
    {
        const int m = 5, n = 203, k = 70;
        var a = Random(m * k, 5);
        var w = Random(n * k, 6);
        var single = new float[m * n];
        var parallel = new float[m * n];
        using var pool = new WorkerPool(3);
        fixed (float* pa = a, pw = w, ps = single, pp = parallel)
        {
            Gemm.Compute(pa, k, pw, k, ps, n, m, n, k, null, GemmStore.Overwrite);
            new MatMulJob().Run(pool, pa, m, k, pw, n, null, pp, n, GemmStore.Overwrite, gelu: true);
        }
        // The vector GELU may differ from the scalar one by an ulp or two (different exp).
        for (int i = 0; i < single.Length; i++) Assert.True(Math.Abs(Activations.Gelu(single[i]) - parallel[i]) <= 1e-6 * (1 + Math.Abs(parallel[i])), $"[{i}]");
    }

    /// <summary>Series branch: relative 1e-6 near zero; A–S branch (1.5e-7 exact, fp32-evaluated): absolute 4e-7.</summary>
    [Fact]
    public void ErfIsAccurateAbsolutelyAndNearZeroRelatively()
    {
        for (double x = -6; x <= 6; x += 0.0007)
        {
            float xf = (float)x;
            double exact = ReferenceErf(xf), error = Math.Abs(Activations.Erf(xf) - exact);
            Assert.True(error < 4e-7, $"erf({xf}): {Activations.Erf(xf)} vs {exact}");
            if (Math.Abs(xf) < 0.5) Assert.True(error <= 1e-6 * Math.Abs(exact) + 1e-30, $"erf({xf}) relative: {Activations.Erf(xf)} vs {exact}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(100)]
    [InlineData(257)]
    public void VectorGeluMatchesTheExactFormula(int length)
    {
        var x = Random(length, length, 5f);
        var y = x.ToArray();
        fixed (float* p = y) Activations.GeluInPlace(p, length);
        for (int i = 0; i < length; i++)
        {
            double exact = 0.5 * x[i] * (1 + ReferenceErf(x[i] / Math.Sqrt(2)));
            Assert.True(Math.Abs(y[i] - exact) <= 1e-6 * (1 + Math.Abs(exact)), $"gelu({x[i]}) = {y[i]}, exact {exact}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(96)]
    [InlineData(100)]
    public void LayerNormMatchesDoublePrecision(int width)
    {
        var x = Random(width, width, 3f);
        for (int i = 0; i < width; i++) x[i] += 10f; // an offset exposes one-pass variance cancellation
        var weight = Random(width, 1);
        var bias = Random(width, 2);
        var y = new float[width];
        fixed (float* px = x, pw = weight, pb = bias, py = y) LayerNorm.Row(px, pw, pb, py, width);
        double mean = x.Average(v => (double)v);
        double variance = x.Average(v => ((double)v - mean) * ((double)v - mean));
        for (int i = 0; i < width; i++)
        {
            double expected = ((double)x[i] - mean) / Math.Sqrt(variance + 1e-5) * weight[i] + bias[i];
            Assert.True(Math.Abs(y[i] - expected) < 1e-4, $"[{i}] {y[i]} vs {expected}");
        }
    }

    public static TheoryData<MaskKind, int, int> Masks => new()
    {
        { MaskKind.BlockCausal, 0, 16 }, { MaskKind.BlockCausal, 0, 1 }, { MaskKind.BlockCausal, 0, 5 },
        { MaskKind.BlockCausal, 7, 4 }, { MaskKind.Hybrid, 8, 16 }, { MaskKind.Hybrid, 5, 4 }, { MaskKind.Hybrid, 3, 1 },
        { MaskKind.None, 0, 1 },
    };

    /// <summary>Every mask of MODEL.md §4 is a key prefix per row, which is what lets kernels take one end per row.</summary>
    [Theory]
    [MemberData(nameof(Masks))]
    public void EveryMaskRowIsAKeyPrefix(MaskKind kind, int prefix, int block)
    {
        var mask = new AttentionMask(kind, prefix, block);
        const int total = 70;
        for (int i = 0; i < total; i++)
        {
            int end = mask.KeyEnd(i, total);
            for (int j = 0; j < total; j++) Assert.True(mask.IsAllowed(i, j) == j < end, $"{kind} L={prefix} B={block}: allowed({i},{j}) vs end {end}");
            if (kind != MaskKind.None) Assert.True(end > i || (i < prefix && end == prefix), "a row always sees itself or the prefix");
        }
    }

    [Theory]
    [InlineData(16, 24, 37)]
    [InlineData(5, 16, 9)]
    [InlineData(16, 96, 300)]
    [InlineData(7, 48, 33)]   // a 32-wide block, then the rest (row groups of 4 and 3)
    [InlineData(37, 64, 90)]  // more rows than one tile: tiles of 16, 16, 5
    [InlineData(1, 96, 300)]  // one row (NTP): the dot-product scores
    public void AttentionTileMatchesNaiveSoftmax(int rows, int headSize, int keys)
    {
        int stride = headSize * 2; // two heads interleaved as in the [position, C] cache
        var q = Random(rows * stride, 1);
        var k = Random(keys * stride, 2);
        var v = Random(keys * stride, 3);
        var output = new float[rows * stride];
        var ends = Enumerable.Range(0, rows).Select(r => Math.Max(1, keys - 3 * r)).ToArray();
        var scores = new float[CpuAttention.TileRows * keys];
        fixed (float* pq = q, pk = k, pv = v, po = output, ps = scores)
            CpuAttention.Tile(pq + headSize, pk + headSize, pv + headSize, po + headSize, stride, headSize, rows, ends, ps);
        for (int r = 0; r < rows; r++)
        {
            var logits = Enumerable.Range(0, ends[r]).Select(j =>
                Enumerable.Range(0, headSize).Sum(d => (double)q[r * stride + headSize + d] * k[j * stride + headSize + d]) / Math.Sqrt(headSize)).ToArray();
            double max = logits.Max();
            var p = logits.Select(l => Math.Exp(l - max)).ToArray();
            double sum = p.Sum();
            for (int d = 0; d < headSize; d++)
            {
                double expected = Enumerable.Range(0, ends[r]).Sum(j => p[j] / sum * v[j * stride + headSize + d]);
                Assert.True(Math.Abs(output[r * stride + headSize + d] - expected) < 1e-5, $"row {r} dim {d}");
                Assert.Equal(0f, output[r * stride + d]); // the other head is untouched
            }
        }
    }

    /// <summary>erf by its Maclaurin series (|x| < 3) or continued fraction, in double: the test's own reference.</summary>
    private static double ReferenceErf(double x)
    {
        double ax = Math.Abs(x);
        double result;
        if (ax < 3)
        {
            double term = ax, sum = ax;
            for (int n = 1; n < 200; n++)
            {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            result = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -result : result;
    }
}
