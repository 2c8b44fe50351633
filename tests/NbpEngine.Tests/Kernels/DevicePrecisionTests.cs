using NbpEngine.Core;
using NbpEngine.Kernels.Backend;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;
using Xunit.Abstractions;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// What CUDA's defaults cost in accuracy, measured on ILGPU's CPU accelerator against the fp32 PyTorch fixture
/// (frame_b16: a 128-row prefill, then 11 block steps). Stated bounds: step-0 logits within 1e-3 relative
/// (max |diff| / max |ref|) for the tensor-core prefill (fp16 operands, emulated mma; 3.7e-4 measured) and for
/// fp16-stored weights; greedy tokens equal to the reference's on this fixture in both cases.
/// </summary>
public class DevicePrecisionTests(ITestOutputHelper output)
{
    public const double LogitTolerance = 1e-3;

    [Fact]
    public Task TensorCorePrefillStaysWithinTheStatedErrorOfFp32() =>
        AssertWithinStatedError(new SessionOptions { Backend = BackendKind.IlgpuCpu, TensorCores = true, DeviceWeights = WeightStorage.F32, Threads = 2 }, "tensor-core");

    [Fact]
    public Task Fp16WeightsStayWithinTheStatedErrorOfFp32() =>
        AssertWithinStatedError(new SessionOptions { Backend = BackendKind.IlgpuCpu, TensorCores = false, DeviceWeights = WeightStorage.F16, Threads = 2 }, "F16 weights");

    private async Task AssertWithinStatedError(SessionOptions options, string expectedInName)
    {
        var fixture = Fixtures.Get("frame_b16");
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf(fixture.Model), new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });
        using var session = model.CreateSession(options);
        Assert.Contains(expectedInName, session.BackendName);
        var generator = session.CreateGenerator(FixtureParityTests.Request(fixture));
        Assert.True(generator.Plan.PromptLength >= 64, "the prefill must be long enough for the tensor-core GEMM (64+ rows)");
        var tokens = new int[generator.Plan.TokenCount];
        int written = generator.Step(tokens);
        var logits = new float[session.LogitRows * model.Config.VocabSize];
        session.CopyLogits(logits);
        var (reference, _) = Fixtures.Npy(Fixtures.PathOf("frame_b16_logits0.npy"));
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - reference[i]));
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
        }
        output.WriteLine($"{session.BackendName}: step-0 logits max |diff| {maxDiff:E3}, max |ref| {maxRef:F3}, relative {maxDiff / maxRef:E3}");
        Assert.True(maxDiff / maxRef <= LogitTolerance, $"relative logit error {maxDiff / maxRef:E3} > {LogitTolerance:E0}");

        while (!generator.IsComplete) written += generator.Step(tokens.AsSpan(written));
        var expected = Fixtures.Tokens("frame_b16_greedy.txt");
        output.WriteLine($"greedy tokens equal to the fp32 reference: {tokens.Zip(expected).Count(p => p.First == p.Second)}/{expected.Length}");
        Assert.Equal(expected, tokens);
    }
}
