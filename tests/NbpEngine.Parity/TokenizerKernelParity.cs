using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Core;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;
using NbpEngine.Kernels.Tokenizer;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Parity;

/// <summary>
/// The tokenizer's ILGPU kernels against the CPU tokenizer (src/Tokenizer/Cpu): conv3d with every
/// stride and kernel size the layer lists use (fp32 and tensor cores, Depth2Space fused into the store), GroupNorm
/// with and without Swish, FSQ.
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
        // tensor cores: Cin a multiple of 8 (two 16-byte loads per 8 taps) and not (3, 6), the 3-channel narrow output,
        // a width past one warp tile (two warps side by side), strides, 1x1x1, the fused Depth2Space
        foreach (var (t, h, w, cin, cout, k, st, ss, acc, warps, d2s) in new[]
                 {
                     (3, 5, 6, 8, 12, 3, 1, 1, false, 1, 0), (3, 4, 4, 6, 40, 3, 1, 1, true, 2, 0), (3, 6, 6, 16, 8, 3, 1, 2, false, 4, 0),
                     (5, 4, 4, 8, 8, 3, 2, 2, false, 2, 0), (2, 3, 5, 16, 6, 1, 1, 1, false, 1, 0), (2, 5, 6, 32, 3, 3, 1, 1, false, 4, 0),
                     (3, 4, 4, 3, 64, 3, 1, 1, false, 4, 0), (2, 3, 3, 16, 72, 1, 1, 1, true, 2, 0), (3, 3, 4, 8, 32, 3, 1, 1, false, 2, 222),
                     (2, 3, 3, 16, 16, 3, 1, 1, false, 1, 122),
                 })
            yield return new($"tokenizer tensor-core conv3d {t}x{h}x{w}x{cin}->{cout} k{k} s{st},{ss},{ss}{(acc ? " acc" : "")} w{warps}{(d2s > 0 ? $" d2s{d2s}" : "")}",
                p => p.TokenizerTensorCoreConv(t, h, w, cin, cout, k, st, ss, acc, warps, d2s));
        foreach (var (t, h, w, c, swish) in new[] { (2, 3, 5, 64, true), (1, 4, 4, 32, false), (3, 2, 2, 96, true) })
            yield return new($"tokenizer groupnorm {t}x{h}x{w}x{c}{(swish ? "+swish" : "")}", p => [p.TokenizerGroupNorm(t, h, w, c, swish)]);
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

    /// <summary>
    /// The tensor-core conv (emulated mma here) against the CPU conv: equal to fp32 compute on fp16-rounded input
    /// and weights up to accumulation order (NMSE 1e-7), within 1e-5 of the unrounded conv. d2s = 100·bt + 10·bh + bw
    /// fuses Depth2Space into the store (compared with the CPU conv followed by Depth2Space.Run).
    /// </summary>
    public ParityResult[] TokenizerTensorCoreConv(int t, int h, int w, int cin, int cout, int k, int st, int ss, bool accumulate, int warps, int d2s)
    {
        var weights = Random(cout * k * k * k * cin, 15, 0.3f);
        var bias = Random(cout, 16);
        (int bt, int bh, int bw) = d2s > 0 ? (d2s / 100, d2s / 10 % 10, d2s % 10) : (1, 1, 1);
        using var x = RandomVolume(t, h, w, cin, 17);
        Volume Reference(float[] wts, Volume input, Volume? initial)
        {
            float* wp = Native(wts), bp = Native(bias);
            try
            {
                var conv = new Conv3d(cin, cout, k, k, k, (st, ss, ss), wp, bp);
                var (to, ho, wo) = conv.OutputShape(input);
                var y = new Volume(to, ho, wo, cout);
                if (initial is not null) new ReadOnlySpan<float>(initial.Data, (int)initial.Length).CopyTo(new Span<float>(y.Data, (int)y.Length));
                using (var ws = new TokenizerWorkspace(2, Math.Max(cin, cout)))
                    conv.Run(ws, input, y, accumulate);
                if (d2s == 0) return y;
                var rearranged = Depth2Space.Run(y, bt, bh, bw);
                y.Dispose();
                return rearranged;
            }
            finally
            {
                NativeMemory.Free(wp);
                NativeMemory.Free(bp);
            }
        }
        using var rounded = RandomVolume(t, h, w, cin, 17);
        for (long i = 0; i < rounded.Length; i++) rounded.Data[i] = (float)(System.Half)rounded.Data[i];
        int tOut = (t + 2 * (k / 2) - k) / st + 1, hOut = (h + 2 * (k / 2) - k) / ss + 1, wOut = (w + 2 * (k / 2) - k) / ss + 1;
        using var initial = accumulate ? RandomVolume(tOut, hOut, wOut, cout, 18) : null;
        using var exact = Reference(weights, x, initial);
        using var onRounded = Reference(RoundToHalf(weights), rounded, initial);
        var yv = Upload(initial is null ? new float[exact.Length] : new ReadOnlySpan<float>(initial.Data, (int)initial.Length).ToArray());
        var xv = Upload(x);
        var packed = TensorCoreConv3dKernel.PackWeights(weights, cout, k * k * k * cin);
        var units = Upload(MemoryMarshal.Cast<ushort, Bits128>(packed).ToArray());
        TokenizerKernels.TensorCoreConv3d(cin)(_stream, MmaTile.Launch(tOut * hOut * wOut, cout, warps), xv, xv.SubView(0, xv.Length / 4 * 4).Cast<Float4>(), units, Upload(bias), yv,
            new Conv3dArgs
            {
                T = t, H = h, W = w, Cin = cin, To = tOut, Ho = hOut, Wo = wOut, Cout = cout, KT = k, KH = k, KW = k, ST = st, SH = ss, SW = ss,
                Accumulate = accumulate ? 1 : 0, BT = d2s > 0 ? bt : 0, BH = bh, BW = bw,
            });
        var result = Download(yv, exact.Length);
        string shape = $"{t}x{h}x{w}x{cin}->{cout} k{k} w{warps}{(d2s > 0 ? $" d2s{d2s}" : "")}";
        return
        [
            new("tokenizer tensor-core conv3d vs fp32 on fp16-rounded operands", shape, Nmse.Of(result, new ReadOnlySpan<float>(onRounded.Data, (int)onRounded.Length)), Nmse.F32),
            new("tokenizer tensor-core conv3d vs fp32", shape, Nmse.Of(result, new ReadOnlySpan<float>(exact.Data, (int)exact.Length)), 1e-5),
        ];
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

    public ParityResult[] TokenizerFsq() => [.. FsqParity(FsqLevels.Published), .. FsqParity(new FsqLevels(3, 3, 3, 3, 3, 3)), .. FsqParity(new FsqLevels(2, 7, 4, 3, 6, 5))];

    private ParityResult[] FsqParity(FsqLevels levels)
    {
        var indices = Enumerable.Range(0, 500).Select(i => i * 127 % levels.CodebookSize).ToArray();
        var codes = Upload(new float[indices.Length * 6]);
        TokenizerKernels.FsqCodes(_stream, new KernelConfig(2, GroupSize), Upload(indices), codes, indices.Length, levels);
        var expected = new float[indices.Length * 6];
        for (int i = 0; i < indices.Length; i++) Fsq.Code(levels, indices[i], expected.AsSpan(i * 6, 6));
        var codeResult = new ParityResult($"tokenizer fsq codes {levels}", "500 indices", Nmse.Of(Download(codes, expected.Length), expected), 0);

        var z = Random(600 * 6, 41, 3f);
        var quantized = Upload(new int[600]);
        TokenizerKernels.FsqQuantize(_stream, new KernelConfig(3, GroupSize), Upload(z), quantized, 600, levels);
        var device = Download(quantized, 600);
        int mismatches = Enumerable.Range(0, 600).Count(p => device[p] != Fsq.Quantize(levels, z.AsSpan(p * 6, 6)));
        return [codeResult, new ParityResult($"tokenizer fsq quantize {levels}", "600 positions", mismatches, 0)];
    }
}
