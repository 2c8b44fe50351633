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

    /// <summary>
    /// B = 4's steps compared here: the first 24 of its 48 (96 tokens; 105 s of the parallel suite's test time for all
    /// 48 on 2026-12-01). B = 16 still runs the cache to its full length, and the CPU backend and CUDA compare all 48.
    /// </summary>
    public const int B4Steps = 24;

    [Theory]
    [MemberData(nameof(FixtureParityTests.Cases), MemberType = typeof(FixtureParityTests))]
    public async Task GreedyTokensMatchPyTorchOnTheIlgpuBackend(string name)
    {
        var fixture = Fixtures.Get(name);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int steps = name switch { "frame_ntp" => NtpSteps, "frame_b4" => B4Steps, _ => int.MaxValue };
        var (tokens, logits, rows, vocab) = await FixtureParityTests.GenerateAsync(fixture, BackendKind.IlgpuCpu, maxSteps: steps);
        output.WriteLine($"{name}: {tokens.Length} tokens on ilgpu-cpu in {clock.Elapsed.TotalSeconds:F1} s");
        bool prefix = steps != int.MaxValue;
        if (prefix) Assert.Equal(steps * fixture.BlockSize, tokens.Length);
        FixtureParityTests.AssertMatchesFixture(name, tokens, logits, rows, vocab, output, prefix);
    }
}
