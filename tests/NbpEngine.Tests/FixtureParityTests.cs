using NbpEngine.Kernels.Backend;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Tests.Support;
using Xunit.Abstractions;

namespace NbpEngine.Tests;

/// <summary>
/// The CPU backend against the PyTorch reference: exact greedy tokens and step-0 logits within
/// 1e-4 relative error (max |diff| / max |ref|) for frame B = 16, B = 4, NTP and hybrid, and hybrid with classifier-free
/// guidance (constant t = 1.5; the linear schedule t = 0.25·n), and a UCF model prompted with a class name's ids (the
/// fixture text tokenizer's, from sentencepiece) with and without guidance.
/// </summary>
public class FixtureParityTests(ITestOutputHelper output)
{
    public const double LogitTolerance = 1e-4;

    public static TheoryData<string> Cases => new() { "frame_b16", "frame_b4", "frame_ntp", "hybrid", "hybrid_cfg", "hybrid_cfg_linear", "ucf_class", "ucf_class_cfg" };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task GreedyTokensMatchPyTorch(string name)
    {
        var (tokens, logits, logitRows, vocab) = await GenerateAsync(Fixtures.Get(name), BackendKind.Cpu);
        AssertMatchesFixture(name, tokens, logits, logitRows, vocab, output);
    }

    /// <summary>The CPU backend with the loaded matrices in place (dot-product GEMM) instead of packed copies.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public async Task GreedyTokensMatchPyTorchWithInPlaceWeights(string name)
    {
        var (tokens, logits, logitRows, vocab) = await GenerateAsync(Fixtures.Get(name), BackendKind.Cpu, cpuWeights: CpuWeightLayout.InPlace);
        AssertMatchesFixture(name, tokens, logits, logitRows, vocab, output);
    }

    /// <summary>
    /// Exact greedy tokens, and step-0 logits within <see cref="LogitTolerance"/> relative error. With
    /// <paramref name="prefix"/>, the tokens are the first steps' only, compared with the fixture's first as many.
    /// </summary>
    internal static void AssertMatchesFixture(string name, int[] tokens, float[] logits, int logitRows, int vocab, ITestOutputHelper output, bool prefix = false)
    {
        var expected = Fixtures.Tokens(name + "_greedy.txt");
        if (prefix)
        {
            Assert.InRange(tokens.Length, 1, expected.Length);
            expected = expected[..tokens.Length];
        }
        int firstDiff = Enumerable.Range(0, Math.Min(tokens.Length, expected.Length)).FirstOrDefault(i => tokens[i] != expected[i], -1);
        Assert.True(tokens.Length == expected.Length && firstDiff < 0,
            $"{name}: {tokens.Length} tokens vs {expected.Length} expected, first difference at {firstDiff}. " +
            $"If the reference changed on purpose, regenerate with: {Fixtures.Regenerate}");

        var (reference, shape) = Fixtures.Npy(Fixtures.PathOf(name + "_logits0.npy"));
        Assert.Equal(new[] { logitRows, vocab }, shape);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - reference[i]));
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
        }
        output.WriteLine($"{name}: step-0 logits max |diff| {maxDiff:E3}, max |ref| {maxRef:F3}, relative {maxDiff / maxRef:E3}");
        Assert.True(maxDiff / maxRef <= LogitTolerance,
            $"{name}: step-0 logits relative error {maxDiff / maxRef:E3} > {LogitTolerance:E0} (max |diff| {maxDiff:E3}); regenerate with: {Fixtures.Regenerate}");
    }

    /// <summary>The fixture's request on <paramref name="backend"/>: all its steps, or the first <paramref name="maxSteps"/>.</summary>
    internal static async Task<(int[] Tokens, float[] Logits, int LogitRows, int Vocab)> GenerateAsync(Fixtures.Case fixture, BackendKind backend, int threads = 2,
        CpuWeightLayout cpuWeights = CpuWeightLayout.Packed, int maxSteps = int.MaxValue)
    {
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf(fixture.Model), new NbpModelOptions { CpuWeights = cpuWeights, DeviceBackends = IlgpuBackends.Provider });
        using var session = model.CreateSession(new SessionOptions { Backend = backend, Threads = threads });
        var generator = session.CreateGenerator(Request(fixture));
        var tokens = new int[generator.Plan.TokenCount];
        int written = generator.Step(tokens);
        var logits = new float[session.LogitRows * model.Config.VocabSize];
        session.CopyLogits(logits);
        int rows = session.LogitRows;
        for (int step = 1; step < maxSteps && !generator.IsComplete; step++) written += generator.Step(tokens.AsSpan(written));
        return (tokens[..written], logits, rows, model.Config.VocabSize);
    }

    internal static GenerationRequest Request(Fixtures.Case fixture) => new()
    {
        Prompt = Fixtures.Tokens(fixture.Prompt),
        Mode = fixture.Mode == "hybrid" ? GenerationMode.Hybrid : GenerationMode.Frame,
        BlockSize = fixture.BlockSize,
        CondLength = fixture.CondLength,
        Steps = fixture.Steps,
        GuidanceScale = fixture.GuidanceScale,
        GuidanceSchedule = fixture.GuidanceSchedule == "linear" ? GuidanceSchedule.Linear : GuidanceSchedule.Constant,
    };
}
