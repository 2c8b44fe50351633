using NbpEngine.Kernels;
using NbpEngine.Parity;

namespace NbpEngine.Tests.Kernels;

/// <summary>The ILGPU CPU accelerator (warp 32) for the whole test class: creating it and compiling kernels costs seconds.</summary>
public sealed class IlgpuFixture : IDisposable
{
    public IlgpuDevice Device { get; } = new(IlgpuDeviceKind.Cpu);
    public KernelParity Parity { get; }
    public IlgpuFixture() => Parity = new KernelParity(Device);

    public void Dispose()
    {
        Parity.Dispose();
        Device.Dispose();
    }
}

/// <summary>
/// The backend parity suite (tests/NbpEngine.Parity) on ILGPU's CPU accelerator: every kernel against
/// the CPU backend. tools/gpu runs the same cases on CUDA.
/// </summary>
public class KernelParityTests(IlgpuFixture gpu) : IClassFixture<IlgpuFixture>
{
    public static TheoryData<string> Cases
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var name in KernelParity.CaseNames) data.Add(name);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesTheCpuBackend(string name)
    {
        foreach (var result in gpu.Parity.Run(name))
            Assert.True(result.Passed, result.ToString());
    }
}
