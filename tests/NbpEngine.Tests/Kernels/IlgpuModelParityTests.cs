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
    /// <summary>
    /// NTP's steps compared here: the first 64 of its 192. ILGPU's CPU accelerator pays for every launch's groups and
    /// barriers, whatever a step's rows, so the 192 one-token steps took ~2 min alone, the suite's slowest test. The
    /// one-row step kernels are the same at every step, B = 4 and 16 run their caches to the full length here, the CPU
    /// backend compares all 192 tokens, and the GPU session all of them on CUDA.
    /// </summary>
    public const int NtpSteps = 64;

    [Theory]
    [MemberData(nameof(FixtureParityTests.Cases), MemberType = typeof(FixtureParityTests))]
    public async Task GreedyTokensMatchPyTorchOnTheIlgpuBackend(string name)
    {
        var fixture = Fixtures.Get(name);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool ntp = fixture.BlockSize == 1;
        var (tokens, logits, rows, vocab) = await FixtureParityTests.GenerateAsync(fixture, BackendKind.IlgpuCpu, maxSteps: ntp ? NtpSteps : int.MaxValue);
        output.WriteLine($"{name}: {tokens.Length} tokens on ilgpu-cpu in {clock.Elapsed.TotalSeconds:F1} s");
        if (ntp) Assert.Equal(NtpSteps, tokens.Length);
        FixtureParityTests.AssertMatchesFixture(name, tokens, logits, rows, vocab, output, prefix: ntp);
    }
}
