using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Parity;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The step anatomy (LaunchProfile markers after every launch) on the CPU accelerator: every launch of a step is charged
/// to a named site, the sites add up to the launch count, and the device time charged fits inside the wall time.
/// </summary>
public class StepAnatomyTests
{
    /// <remarks>
    /// One case draws with top-k and top-p (the sampler's 19 launches); the others greedily (one), because the CPU
    /// accelerator's cost grows with launches x barriers and the sampler's sites do not depend on the block.
    /// </remarks>
    [Theory]
    [InlineData(16, false, false)]
    [InlineData(1, false, true)]
    [InlineData(16, true, false)]
    public void EveryLaunchOfAStepIsChargedToItsSite(int block, bool fused, bool filtered)
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        int[] prompt = Fixtures.Tokens("frame_prompt.txt")[..32];
        var sampling = filtered ? new SamplingArgs { Temperature = 1f, TopK = 40, TopP = 0.9f, Seed = 7 } : new SamplingArgs { Greedy = 1 };
        var result = StepAnatomy.Measure<F32Weights>(device, Fixtures.PathOf("frame_model.safetensors"), prompt, [(block, 2, sampling, fused)], tensorCores: false)[0];

        int layers = 2; // frame_model.safetensors: n_layer 2
        // embedding, final norm, head; the sampler: ArgMax, or with top-k and top-p both cutting Scale, 7 top-k levels,
        // Weigh, 7 top-p levels, Cut, Survivors, Draw
        var samplerLaunches = filtered
            ? new[] { ("Scale", 1), ("TopKLevel", 7), ("Weigh", 1), ("TopPLevel", 7), ("Cut", 1), ("Survivors", 1), ("Draw", 1) }
            : new[] { ("ArgMax", 1) };
        Assert.Equal((fused ? 1 : 6) * layers + 3 + samplerLaunches.Sum(l => l.Item2), result.LaunchesPerStep);
        var perStep = result.Sites.ToDictionary(s => (s.What, s.Kernel), s => s.Count / result.Steps);
        if (fused) Assert.Equal(layers, perStep[("layer", "fused")]);
        else
        {
            Assert.Equal(layers, perStep[("q/k/v gemm", "step")]);
            Assert.Equal(layers, perStep[("proj gemm", "step")]);
            Assert.Equal(layers, perStep[("fc gemm", "step")]);
            Assert.Equal(layers, perStep[("out gemm", "step")]);
            Assert.Equal(layers, perStep[("attention", "split-key partial")]);
            Assert.Equal(layers, perStep[("attention", "split-key combine")]);
        }
        Assert.Equal(1, perStep[("embedding", "embedding")]);
        Assert.Equal(1, perStep[("layernorm", "layernorm")]); // the final norm: LN1 and LN2 are folded into the GEMMs
        Assert.Equal(1, perStep[("head gemm", "step")]);
        foreach (var (kernel, count) in samplerLaunches) Assert.Equal(count, perStep[("sampling", $"sampler {kernel}")]);
        Assert.Equal(1, perStep[("ids read-back", "memcpy")]);
        Assert.Equal(result.LaunchesPerStep, result.Sites.Where(s => s.Kernel != "memcpy").Sum(s => s.Count) / result.Steps);
        Assert.All(result.Sites, s => Assert.True(s.DeviceTime >= TimeSpan.Zero, $"{s.What}: {s.DeviceTime}"));
        Assert.True(result.DeviceMsPerStep > 0);
        Assert.True(result.DeviceMsPerStep <= result.ProfiledMsPerStep * 1.01, $"device {result.DeviceMsPerStep} ms > wall {result.ProfiledMsPerStep} ms");
        Assert.Contains(result.Table(), line => line.StartsWith($"| sampling | sampler {samplerLaunches[^1].Item1} |"));
    }

    /// <summary>
    /// With the step GEMMs on tensor cores each GEMM is two sites, the rounding of its rows and the multiply, and the
    /// table says which path ran (the figures nbp-gpu-check prints beside today's).
    /// </summary>
    [Fact]
    public void TensorCoreStepGemmsAreChargedAsRoundingAndMultiply()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        int[] prompt = Fixtures.Tokens("frame_prompt.txt")[..32];
        var result = StepAnatomy.Measure<F16Weights>(device, Fixtures.PathOf("frame_model.safetensors"), prompt, [(16, 2, new SamplingArgs { Greedy = 1 }, true)],
            tensorCores: false, tensorCoreSteps: true)[0];
        int layers = 2;
        var perStep = result.Sites.ToDictionary(s => (s.What, s.Kernel), s => s.Count / result.Steps);
        foreach (string gemm in new[] { "q/k/v gemm", "proj gemm", "fc gemm", "out gemm" })
        {
            Assert.Equal(layers, perStep[(gemm, "half rows")]);
            Assert.Equal(layers, perStep[(gemm, "step mma")]);
        }
        Assert.Equal(1, perStep[("head gemm", "step mma")]);
        Assert.False(perStep.ContainsKey(("layer", "fused")));
        Assert.Equal(10 * layers + 5, result.LaunchesPerStep); // embedding, final norm, head x 2, ArgMax
        Assert.StartsWith("B = 16, separate kernels, step GEMMs on tensor cores,", result.Table().First());
    }

    [Fact]
    public void LaunchOverheadIsMeasuredOnTheHostAndTheDevice()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        var (host, onDevice) = StepAnatomy.LaunchOverhead(device, 20);
        Assert.True(host > 0, $"host {host} µs");
        Assert.True(onDevice > 0, $"device {onDevice} µs");
    }
}
