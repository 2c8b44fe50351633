using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;
using Xunit.Abstractions;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The whole model through the ILGPU kernels on the CPU accelerator: greedy tokens equal the
/// PyTorch fixtures (and so the CPU backend's) for frame B = 16, B = 4, NTP and hybrid, and the
/// step-0 logits agree with PyTorch within the same 1e-4 relative bound as the CPU backend.
/// </summary>
public class IlgpuModelParityTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(FixtureParityTests.Cases), MemberType = typeof(FixtureParityTests))]
    public async Task GreedyTokensMatchPyTorchOnTheIlgpuBackend(string name)
    {
        var fixture = Fixtures.Get(name);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (tokens, logits, rows, vocab) = await FixtureParityTests.GenerateAsync(fixture, BackendKind.IlgpuCpu);
        output.WriteLine($"{name}: {tokens.Length} tokens on ilgpu-cpu in {clock.Elapsed.TotalSeconds:F1} s");
        FixtureParityTests.AssertMatchesFixture(name, tokens, logits, rows, vocab, output);
    }
}
