using NbpEngine.Kernels.Backend;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;
using Xunit.Abstractions;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The prefill on tensor cores (fp16 operands, fp32 accumulation; emulated mma on the CPU accelerator) against the
/// fp32 PyTorch fixture: the stated logit error is at most 1e-3 relative (max |diff| / max |ref|) for the 128-row
/// prefill of frame_b16, and the whole greedy generation still gives the reference's tokens on that fixture.
/// </summary>
public class TensorCorePrefillTests(ITestOutputHelper output)
{
    public const double LogitTolerance = 1e-3;

    [Fact]
    public async Task TensorCorePrefillLogitsStayWithinTheStatedErrorOfFp32()
    {
        var fixture = Fixtures.Get("frame_b16");
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf(fixture.Model), new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.IlgpuCpu, TensorCores = true, Threads = 2 });
        Assert.Contains("tensor-core", session.BackendName);
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
        output.WriteLine($"tensor-core prefill: step-0 logits max |diff| {maxDiff:E3}, max |ref| {maxRef:F3}, relative {maxDiff / maxRef:E3}");
        Assert.True(maxDiff / maxRef <= LogitTolerance, $"relative logit error {maxDiff / maxRef:E3} > {LogitTolerance:E0}");

        while (!generator.IsComplete) written += generator.Step(tokens.AsSpan(written));
        var expected = Fixtures.Tokens("frame_b16_greedy.txt");
        output.WriteLine($"greedy tokens equal to the fp32 reference: {tokens.Zip(expected).Count(p => p.First == p.Second)}/{expected.Length}");
        Assert.Equal(expected, tokens);
    }
}
