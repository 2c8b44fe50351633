using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tests;

/// <summary>The packed outer-product GEMM against a double-precision loop, with tails in every dimension.</summary>
public unsafe class PackedGemmTests
{
    public static TheoryData<int, int, int, bool> Shapes
    {
        get
        {
            var data = new TheoryData<int, int, int, bool>();
            foreach (var (m, n, k) in new[] { (1, 1, 1), (7, 31, 17), (8, 32, 384), (9, 33, 385), (70, 100, 1000), (130, 64, 3) })
                foreach (bool accumulate in new[] { false, true })
                    data.Add(m, n, k, accumulate);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesNaive(int m, int n, int k, bool accumulate)
    {
        var rng = new Random(m * 1000 + n + k);
        float[] R(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var a = R(m * k);
        var w = R(n * k);
        var bias = R(n);
        var c = R(m * n);
        var result = c.ToArray();
        using var pool = new WorkerPool(2);
        fixed (float* pa = a, pw = w, pb = bias, pc = result)
        {
            using var packed = new PackedWeights(pw, n, k);
            new PackedMatMulJob().Run(pool, pa, m, k, packed, pb, pc, n, accumulate ? GemmStore.Accumulate : GemmStore.Overwrite);
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = bias[j] + (accumulate ? c[i * n + j] : 0);
                for (int p = 0; p < k; p++) expected += (double)a[i * k + p] * w[j * k + p];
                Assert.True(Math.Abs(result[i * n + j] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"[{i},{j}] {result[i * n + j]} vs {expected}");
            }
    }

    /// <summary>K split in three segments stored apart (the Winograd conv's three frames) equals one contiguous A.</summary>
    [Theory]
    [InlineData(9, 40, 16)]
    [InlineData(64, 32, 400)]  // segments longer than a K block
    public void SegmentedRowsEqualContiguousRows(int m, int n, int segmentK)
    {
        var rng = new Random(m + n + segmentK);
        int k = 3 * segmentK;
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        // the same values as three [m, segmentK] blocks, 5 rows of slack apart
        long stride = (long)(m + 5) * segmentK;
        var segmented = new float[3 * stride];
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < m; i++)
                Array.Copy(a, i * k + s * segmentK, segmented, s * stride + (long)i * segmentK, segmentK);
        var expected = new float[m * n];
        var result = new float[m * n];
        fixed (float* pa = a, pw = w, ps = segmented, pe = expected, pr = result)
        {
            using var packed = new PackedWeights(pw, n, k);
            for (int panel = 0; panel < packed.Panels; panel++)
            {
                PackedGemm.ComputePanel(pa, k, packed, panel, pe, n, 0, m, null, GemmStore.Overwrite);
                PackedGemm.ComputePanel(new SegmentedRows(ps, segmentK, segmentK, stride), packed, panel, pr, n, 0, m, null, GemmStore.Overwrite);
            }
        }
        Assert.Equal(expected, result);
    }
}
