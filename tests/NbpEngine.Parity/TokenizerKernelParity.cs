using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Tokenizer;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Parity;

/// <summary>
/// The tokenizer's ILGPU kernels against the CPU tokenizer (src/Tokenizer/Cpu): conv3d with every
/// stride and kernel size the layer lists use, GroupNorm with and without Swish, Depth2Space, FSQ.
/// Part of <see cref="KernelParity"/>, so CI and tools/gpu run it too.
/// </summary>
public sealed unsafe partial class KernelParity
{
    private TokenizerKernelSet? _tokenizerKernels;
    private TokenizerKernelSet TokenizerKernels => _tokenizerKernels ??= new TokenizerKernelSet(_accelerator);

    private static IEnumerable<Case> TokenizerCases()
    {
        foreach (var (t, h, w, cin, cout, k, st, ss, acc) in new[]
                 {
                     (3, 5, 6, 8, 12, 3, 1, 1, false), (3, 4, 4, 6, 40, 3, 1, 1, true), (3, 6, 6, 8, 8, 3, 1, 2, false),
                     (5, 4, 4, 8, 8, 3, 2, 2, false), (2, 3, 5, 16, 6, 1, 1, 1, false), (2, 3, 3, 16, 16, 1, 1, 1, true),
                 })
            yield return new($"tokenizer conv3d {t}x{h}x{w}x{cin}->{cout} k{k} s{st},{ss},{ss}{(acc ? " acc" : "")}", p => [p.TokenizerConv(t, h, w, cin, cout, k, st, ss, acc)]);
        foreach (var (t, h, w, c, swish) in new[] { (2, 3, 5, 64, true), (1, 4, 4, 32, false), (3, 2, 2, 96, true) })
            yield return new($"tokenizer groupnorm {t}x{h}x{w}x{c}{(swish ? "+swish" : "")}", p => [p.TokenizerGroupNorm(t, h, w, c, swish)]);
        foreach (var (bt, bh, bw) in new[] { (2, 2, 2), (1, 2, 2) })
            yield return new($"tokenizer depth2space {bt}{bh}{bw}", p => [p.TokenizerDepth2Space(bt, bh, bw)]);
        yield return new("tokenizer fsq codes and quantize", p => p.TokenizerFsq());
    }

    private static Volume RandomVolume(int t, int h, int w, int c, int seed, float offset = 0)
    {
        var v = new Volume(t, h, w, c);
        var rng = new Random(seed);
        for (long i = 0; i < v.Length; i++) v.Data[i] = (float)(rng.NextDouble() * 2 - 1) + offset;
        return v;
    }

    private ArrayView<float> Upload(Volume v) => Upload(new ReadOnlySpan<float>(v.Data, checked((int)v.Length)).ToArray());

    private static float* Native(float[] values)
    {
        var p = (float*)NativeMemory.Alloc((nuint)(values.Length * sizeof(float)));
        values.CopyTo(new Span<float>(p, values.Length));
        return p;
    }

    public ParityResult TokenizerConv(int t, int h, int w, int cin, int cout, int k, int st, int ss, bool accumulate)
    {
        var weights = Random(cout * k * k * k * cin, 11, 0.3f); // already [cout, kt, kh, kw, cin]
        var bias = Random(cout, 12);
        float* wp = Native(weights), bp = Native(bias);
        try
        {
            var conv = new Conv3d(cin, cout, k, k, k, (st, ss, ss), wp, bp);
            using var x = RandomVolume(t, h, w, cin, 13);
            var (to, ho, wo) = conv.OutputShape(x);
            using var y = RandomVolume(to, ho, wo, cout, 14);
            var yv = Upload(y);
            using (var ws = new TokenizerWorkspace(2, Math.Max(cin, cout)))
                conv.Run(ws, x, y, accumulate);
            TokenizerKernels.Conv3d(_stream, TokenizerKernelSet.ConvGrid(to * ho * wo, cout, GroupSize), Upload(x), Upload(weights), Upload(bias), yv,
                new Conv3dArgs { T = t, H = h, W = w, Cin = cin, To = to, Ho = ho, Wo = wo, Cout = cout, KT = k, KH = k, KW = k, ST = st, SH = ss, SW = ss, Accumulate = accumulate ? 1 : 0 });
            return new("tokenizer conv3d", $"{t}x{h}x{w}x{cin}->{cout} k{k}", Nmse.Of(Download(yv, y.Length), new ReadOnlySpan<float>(y.Data, (int)y.Length)), Nmse.F32);
        }
        finally
        {
            NativeMemory.Free(wp);
            NativeMemory.Free(bp);
        }
    }

    public ParityResult TokenizerGroupNorm(int t, int h, int w, int c, bool swish)
    {
        var gamma = Random(c, 21);
        var beta = Random(c, 22);
        var swishBeta = Random(c, 23).Select(v => v + 1.5f).ToArray();
        float* gp = Native(gamma), bp = Native(beta), sp = Native(swishBeta);
        try
        {
            using var x = RandomVolume(t, h, w, c, 24, offset: 2f);
            var xv = Upload(x);
            var yv = Upload(new float[x.Length]);
            using (var ws = new TokenizerWorkspace(2, c))
                new GroupNormSwish(c, gp, bp, swish ? sp : null).Run(ws, x, x);
            TokenizerKernels.GroupNormSwish(_stream, new KernelConfig(t * GroupNormSwishKernel.Groups, GroupSize), xv, Upload(gamma), Upload(beta), Upload(swishBeta), yv,
                new VolumeArgs { T = t, H = h, W = w, C = c }, swish ? 1 : 0);
            return new("tokenizer groupnorm", $"{t}x{h}x{w}x{c}", Nmse.Of(Download(yv, x.Length), new ReadOnlySpan<float>(x.Data, (int)x.Length)), Nmse.F32);
        }
        finally
        {
            NativeMemory.Free(gp);
            NativeMemory.Free(bp);
            NativeMemory.Free(sp);
        }
    }

    public ParityResult TokenizerDepth2Space(int bt, int bh, int bw)
    {
        using var x = RandomVolume(3, 2, 3, bt * bh * bw * 5, 31);
        using var y = Depth2Space.Run(x, bt, bh, bw);
        var yv = Upload(new float[y.Length]);
        TokenizerKernels.Depth2Space(_stream, new KernelConfig(4, GroupSize), Upload(x), yv, new VolumeArgs { T = 3, H = 2, W = 3, C = x.Channels }, bt, bh, bw);
        return new("tokenizer depth2space", $"{bt}{bh}{bw}", Nmse.Of(Download(yv, y.Length), new ReadOnlySpan<float>(y.Data, (int)y.Length)), 0);
    }

    public ParityResult[] TokenizerFsq()
    {
        var indices = Enumerable.Range(0, 500).Select(i => i * 127 % Fsq.CodebookSize).ToArray();
        var codes = Upload(new float[indices.Length * 6]);
        TokenizerKernels.FsqCodes(_stream, new KernelConfig(2, GroupSize), Upload(indices), codes, indices.Length);
        var expected = new float[indices.Length * 6];
        for (int i = 0; i < indices.Length; i++) Fsq.Code(indices[i], expected.AsSpan(i * 6, 6));
        var codeResult = new ParityResult("tokenizer fsq codes", "500 indices", Nmse.Of(Download(codes, expected.Length), expected), 0);

        var z = Random(600 * 6, 41, 3f);
        var quantized = Upload(new int[600]);
        TokenizerKernels.FsqQuantize(_stream, new KernelConfig(3, GroupSize), Upload(z), quantized, 600);
        var device = Download(quantized, 600);
        int mismatches = Enumerable.Range(0, 600).Count(p => device[p] != Fsq.Quantize(z.AsSpan(p * 6, 6)));
        return [codeResult, new ParityResult("tokenizer fsq quantize", "600 positions", mismatches, 0)];
    }
}
