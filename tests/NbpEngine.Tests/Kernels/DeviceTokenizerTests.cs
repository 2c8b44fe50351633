using NbpEngine.Kernels;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer;
using NbpEngine.Kernels.Tokenizer;
using Xunit.Abstractions;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The whole tokenizer through the ILGPU kernels on the CPU accelerator against the CPU tokenizer
/// (itself checked against PyTorch): small latents, since every GPU thread is emulated.
/// </summary>
public class DeviceTokenizerTests(ITestOutputHelper output)
{
    /// <summary>
    /// fp32 convs: pixels within 1e-4 of the CPU tokenizer, codes equal unless a bounded value lies within 1e-4 of a
    /// rounding boundary. Tensor cores (fp16 operands, fp32 accumulation, emulated mma): the stated tolerance is max
    /// |diff| ≤ 1e-2 (about 2.5 of 255 levels; 3.9e-3 measured) and mean ≤ 1e-3 (4.1e-4 measured) in [0, 1] pixels, and
    /// codes equal unless a bounded value lies within 2e-2 of a boundary, at most 1 of the 8 codes.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DeviceDecodeAndEncodeMatchTheCpuTokenizer(bool tensorCores)
    {
        using var model = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors"));
        using var device = new DeviceTokenizer(model, IlgpuDeviceKind.Cpu, tensorCores);
        var (codes, _) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        var latent = codes.Take(2 * 2 * 2).ToArray(); // 2 latent frames of 2x2 -> 5 frames of 16x16
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var onDevice = device.Decode(latent, 2, 2, 2);
        output.WriteLine($"device decode [2,2,2] in {clock.ElapsedMilliseconds} ms");
        var onCpu = model.Decode(latent, 2, 2, 2, threads: 2);
        Assert.Equal(onCpu.Length, onDevice.Length);
        double maxDiff = onCpu.Zip(onDevice).Max(p => Math.Abs(p.First - p.Second));
        double meanDiff = onCpu.Zip(onDevice).Average(p => Math.Abs(p.First - p.Second));
        output.WriteLine($"decode max |diff| {maxDiff:E3} mean {meanDiff:E3}");
        Assert.True(maxDiff <= (tensorCores ? 1e-2 : 1e-4), $"device decode differs from the CPU tokenizer by {maxDiff:E3}");
        Assert.True(meanDiff <= (tensorCores ? 1e-3 : 1e-5), $"device decode differs from the CPU tokenizer by {meanDiff:E3} on average");

        clock.Restart();
        var encodedOnDevice = device.Encode(onCpu, 5, 16, 16);
        output.WriteLine($"device encode [3,5,16,16] in {clock.ElapsedMilliseconds} ms");
        var bounded = new float[encodedOnDevice.Length * Fsq.Dimensions];
        var encodedOnCpu = model.Encode(onCpu, 5, 16, 16, threads: 2, bounded);
        int differing = encodedOnCpu.Zip(encodedOnDevice).Count(p => p.First != p.Second);
        output.WriteLine($"encode: {differing} of {encodedOnCpu.Length} codes differ");
        Assert.True(differing <= (tensorCores ? 1 : 0), $"{differing} of {encodedOnCpu.Length} codes differ");
        double boundary = tensorCores ? 2e-2 : 1e-4;
        for (int p = 0; p < encodedOnCpu.Length; p++)
        {
            if (encodedOnCpu[p] == encodedOnDevice[p]) continue;
            bool near = Enumerable.Range(0, Fsq.Dimensions).Any(d => Math.Abs(Math.Abs(bounded[p * 6 + d] - MathF.Floor(bounded[p * 6 + d])) - 0.5) < boundary);
            Assert.True(near, $"code {p}: device {encodedOnDevice[p]}, cpu {encodedOnCpu[p]}, not at a rounding boundary");
        }
    }

    [Fact]
    public void ASecondDecodeAndEncodeOfTheSameShapeAllocateNothing()
    {
        using var model = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors"));
        using var device = new DeviceTokenizer(model, IlgpuDeviceKind.Cpu, tensorCores: true); // packed fp16 weights, as on CUDA
        var (codes, _) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        var latent = codes.Take(2 * 2).ToArray(); // one latent frame of 2x2 -> one frame of 16x16 (the emulation is slow)
        var first = device.Decode(latent, 1, 2, 2);
        device.Encode(first, 1, 16, 16);
        long warm = device.Allocations;
        Assert.True(warm > 0);
        var second = device.Decode(latent, 1, 2, 2);
        device.Encode(second, 1, 16, 16);
        Assert.Equal(warm, device.Allocations); // the workspace served every volume
        Assert.Equal(first, second);            // and reusing buffers changed nothing
    }
}
