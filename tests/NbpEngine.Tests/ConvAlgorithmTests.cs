using System.Runtime.InteropServices;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Cpu;
using Xunit.Abstractions;

namespace NbpEngine.Tests;

/// <summary>
/// Both CPU conv algorithms (im2col GEMM and Winograd F(4x4, 3x3)) against a double-precision direct
/// CausalConv3d written straight from TOKENIZER.md: replicate padding in space, two replicated frames in
/// front. Sizes that are not multiples of the 4x4 tile, single frames, accumulation, and a small
/// Winograd budget so the frame chunks (and their recomputed causal halo) are exercised.
/// </summary>
public unsafe class ConvAlgorithmTests(ITestOutputHelper output)
{
    public static TheoryData<int, int, int, int, int, bool, long> Shapes => new()
    {
        { 1, 4, 4, 16, 16, false, 256L << 20 },
        { 5, 7, 9, 16, 32, false, 256L << 20 },
        { 5, 7, 9, 16, 32, true, 1 },           // one frame per chunk
        { 4, 13, 6, 32, 16, true, 200_000 },    // three frames per chunk, then one
        { 3, 8, 8, 48, 64, false, 300_000 },     // chunks of 1 (budget below 3 frames of V)
        { 2, 2, 3, 16, 16, true, 256L << 20 },  // frame smaller than one tile
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BothAlgorithmsMatchTheDirectConv(int t, int h, int w, int cin, int cout, bool accumulate, long budget)
    {
        var rng = new Random(t * 1000 + h * 100 + w + cin);
        float[] R(long count, float scale) => Enumerable.Range(0, (int)count).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
        var weights = R(27L * cin * cout, 0.2f); // [cout, kt, kh, kw, cin]
        var bias = R(cout, 1);
        var input = R((long)t * h * w * cin, 1);
        var initial = R((long)t * h * w * cout, 1);
        var expected = Direct(input, weights, bias, t, h, w, cin, cout);
        if (accumulate)
            for (int i = 0; i < expected.Length; i++) expected[i] += initial[i];
        double scale = Math.Sqrt(expected.Average(v => v * v));

        fixed (float* wp = weights, bp = bias)
        {
            var conv = new Conv3d(cin, cout, 3, 3, 3, (1, 1, 1), wp, bp);
            Assert.True(conv.WinogradApplies);
            try
            {
                foreach (var algorithm in new[] { ConvAlgorithm.Im2Col, ConvAlgorithm.Winograd })
                {
                    using var x = new Volume(t, h, w, cin);
                    input.CopyTo(new Span<float>(x.Data, input.Length));
                    using var y = new Volume(t, h, w, cout);
                    initial.CopyTo(new Span<float>(y.Data, initial.Length));
                    using (var ws = new TokenizerWorkspace(2, Math.Max(cin, cout), algorithm, budget))
                        conv.Run(ws, x, y, accumulate);
                    double maxRel = 0;
                    for (int i = 0; i < expected.Length; i++) maxRel = Math.Max(maxRel, Math.Abs(y.Data[i] - expected[i]) / scale);
                    output.WriteLine($"{algorithm}: max |diff| / rms {maxRel:E2}");
                    // fp32 error of the direct sum is a few 1e-6 of the rms here; Winograd F(4,3)'s transforms
                    // add ~5x that (its points ±2 scale values by up to 8), a wrong index gives ~1
                    double bound = algorithm == ConvAlgorithm.Winograd ? 1e-4 : 2e-5;
                    Assert.True(maxRel < bound, $"{algorithm} {t}x{h}x{w} {cin}->{cout}: max |diff| / rms = {maxRel:E2}");
                }
            }
            finally { conv.ReleasePacked(); }
        }
    }

    [Fact]
    public void AutoKeepsSmallFramesOnIm2Col()
    {
        var weights = new float[27 * 16 * 16];
        fixed (float* wp = weights)
        {
            var conv = new Conv3d(16, 16, 3, 3, 3, (1, 1, 1), wp, null);
            Assert.False(conv.UsesWinograd(ConvAlgorithm.Auto, 16, 16));
            Assert.True(conv.UsesWinograd(ConvAlgorithm.Auto, 32, 32));
            Assert.True(conv.UsesWinograd(ConvAlgorithm.Winograd, 2, 2));
            Assert.False(conv.UsesWinograd(ConvAlgorithm.Im2Col, 128, 128));
            var strided = new Conv3d(16, 16, 3, 3, 3, (1, 2, 2), wp, null);
            Assert.False(strided.UsesWinograd(ConvAlgorithm.Winograd, 64, 64));
            var narrow = new Conv3d(16, 3, 3, 3, 3, (1, 1, 1), wp, null);
            Assert.False(narrow.UsesWinograd(ConvAlgorithm.Winograd, 64, 64));
        }
    }

    /// <summary>CausalConv3d(k = 3, stride 1) by definition, in double, channels-last [t, h, w, c].</summary>
    private static double[] Direct(float[] x, float[] weight, float[] bias, int t, int h, int w, int cin, int cout)
    {
        var y = new double[(long)t * h * w * cout];
        for (int to = 0; to < t; to++)
            for (int ho = 0; ho < h; ho++)
                for (int wo = 0; wo < w; wo++)
                    for (int o = 0; o < cout; o++)
                    {
                        double sum = bias[o];
                        for (int kt = 0; kt < 3; kt++)
                        {
                            int ti = Math.Max(0, to + kt - 2);
                            for (int kh = 0; kh < 3; kh++)
                            {
                                int hi = Math.Clamp(ho + kh - 1, 0, h - 1);
                                for (int kw = 0; kw < 3; kw++)
                                {
                                    int wi = Math.Clamp(wo + kw - 1, 0, w - 1);
                                    int xBase = ((ti * h + hi) * w + wi) * cin, wBase = (((o * 3 + kt) * 3 + kh) * 3 + kw) * cin;
                                    for (int c = 0; c < cin; c++) sum += (double)x[xBase + c] * weight[wBase + c];
                                }
                            }
                        }
                        y[(((long)to * h + ho) * w + wo) * cout + o] = sum;
                    }
        return y;
    }
}
