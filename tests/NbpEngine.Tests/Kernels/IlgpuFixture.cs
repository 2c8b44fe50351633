using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Tests.Kernels;

/// <summary>One ILGPU CPU accelerator (warp 32) and compiled kernels, shared by a test class.</summary>
public sealed class IlgpuFixture : IDisposable
{
    public IlgpuDevice Device { get; } = new(IlgpuDeviceKind.Cpu);
    public Accelerator Accelerator => Device.Accelerator;
    public AcceleratorStream Stream { get; }
    public KernelSet<F32Weights> F32 { get; }
    public KernelSet<F16Weights> F16 { get; }
    public KernelSet<BF16Weights> BF16 { get; }
    private readonly List<MemoryBuffer> _buffers = new();

    public IlgpuFixture()
    {
        Stream = Accelerator.CreateStream();
        F32 = new KernelSet<F32Weights>(Accelerator);
        F16 = new KernelSet<F16Weights>(Accelerator);
        BF16 = new KernelSet<BF16Weights>(Accelerator);
    }

    public ArrayView<T> Upload<T>(T[] data) where T : unmanaged
    {
        var buffer = Accelerator.Allocate1D<T>(Math.Max(data.Length, 1));
        lock (_buffers) _buffers.Add(buffer);
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(Stream, data);
        return buffer.View;
    }

    public T[] Download<T>(ArrayView<T> view, long count) where T : unmanaged
    {
        var result = new T[count];
        view.SubView(0, count).CopyToCPU(Stream, result);
        Stream.Synchronize();
        return result;
    }

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        Stream.Dispose();
        Device.Dispose();
    }
}

/// <summary>Normalised mean squared error, Σ(a-b)² / Σb², the parity measure of STYLE.md habit 2.</summary>
public static class Nmse
{
    public const double F32 = 1e-7;

    public static double Of(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double error = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"NaN at {i}");
            double d = actual[i] - expected[i];
            error += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? error : error / norm;
    }

    public static void AtMost(double bound, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what)
    {
        double nmse = Of(actual, expected);
        Assert.True(nmse <= bound, $"{what}: NMSE {nmse:E3} > {bound:E1}");
    }
}
