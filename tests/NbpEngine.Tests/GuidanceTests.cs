using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Kernels.Backend;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer.Text;

namespace NbpEngine.Tests;

/// <summary>
/// Classifier-free guidance (issue 15): the fixtures' guided greedy tokens come from the PyTorch reference
/// (FixtureParityTests runs hybrid_cfg and hybrid_cfg_linear on the CPU and ILGPU backends); here the command line, the
/// batch session, a class prompt through the embedding API, and the refusals.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public class GuidanceTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly string TextModel = Fixtures.PathOf("text/tokenizer.model");

    private static async Task<NbpModel> Load(string path) => await NbpModel.LoadAsync(path, new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });

    [Theory]
    [InlineData("hybrid_cfg", "1.5", "constant")]
    [InlineData("hybrid_cfg_linear", "0.25", "linear")]
    public async Task TheCommandLineGuidesAsThePyTorchReference(string fixture, string scale, string schedule)
    {
        var (code, stderr) = await CliRunner.Run("--weights", Fixtures.PathOf("hybrid_model.safetensors"), "--prompt-tokens", Fixtures.PathOf("hybrid_prompt.txt"),
            "--tokens-out", _dir.File("o.txt"), "--greedy", "--cfg-scale", scale, "--cfg-schedule", schedule, "--backend", "cpu", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(Fixtures.Tokens(fixture + "_greedy.txt"), Fixtures.Tokens(_dir.File("o.txt")));
        Assert.NotEqual(Fixtures.Tokens("hybrid_greedy.txt"), Fixtures.Tokens(_dir.File("o.txt"))); // the guidance changes something
    }

    /// <summary>A class name through the text tokenizer to a hybrid generation, greedy, with and without guidance, as the PyTorch reference gives it.</summary>
    [Theory]
    [InlineData("ucf_class", "0")]
    [InlineData("ucf_class_cfg", "1.5")]
    public async Task AClassGeneratesAsThePyTorchReference(string fixture, string scale)
    {
        var (code, stderr) = await CliRunner.Run("--weights", Fixtures.PathOf("ucf_model.safetensors"), "--class", "ApplyEyeMakeup", "--text-tokenizer", TextModel,
            "--tokens-out", _dir.File("o.txt"), "--greedy", "--cfg-scale", scale, "--backend", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains($"condition 'apply eye makeup' -> {File.ReadAllText(Fixtures.PathOf("ucf_prompt.txt")).Trim()}", stderr);
        Assert.Equal(Fixtures.Tokens(fixture + "_greedy.txt"), Fixtures.Tokens(_dir.File("o.txt")));
    }

    [Fact]
    public async Task GuidedRequestsGetTheirAloneTokensInABatch()
    {
        using var model = await Load(Fixtures.PathOf("hybrid_model.safetensors"));
        var fixture = FixtureParityTests.Request(Fixtures.Get("hybrid_cfg"));
        GenerationRequest[] requests =
        [
            fixture,
            fixture with { Seed = 3, Sampling = SamplingSettings.Published, GuidanceScale = 2f },
            fixture with { Seed = 4, Sampling = new SamplingSettings(false, 1.1f, 40, 1f), GuidanceScale = 0 },
            fixture with { Seed = 5, Sampling = SamplingSettings.Published, GuidanceScale = 0.5f, GuidanceSchedule = GuidanceSchedule.Linear, Steps = 9 },
        ];
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        var alone = requests.Select(r =>
        {
            var tokens = new int[session.Plan(r).TokenCount];
            session.Generate(r, tokens);
            return tokens;
        }).ToArray();
        Assert.Equal(Fixtures.Tokens("hybrid_cfg_greedy.txt"), alone[0]);
        using var batch = model.CreateBatchSession(3, new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        foreach (var result in batch.Generate(requests))
            Assert.True(alone[result.Index].SequenceEqual(result.Tokens!), $"request {result.Index} differs in the batch");
    }

    /// <summary>The embedding API: a class name and a guidance scale make a request; the CLI's --class/--cfg-scale give the same tokens.</summary>
    [Fact]
    public async Task AClassAndAScaleMakeARequestThroughTheApi()
    {
        string weights = TinyModels.TextHybrid(_dir.File("hybrid.safetensors"));
        using var model = await Load(weights);
        var text = TextPromptTokenizer.Load(TextModel);
        var request = new GenerationRequest { Prompt = text.ClassPrompt("PlayingGuitar", model.Config), GuidanceScale = 1.5f, Sampling = SamplingSettings.Published, Seed = 7 };
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        var tokens = new int[session.Plan(request).TokenCount];
        session.Generate(request, tokens);
        var plain = new int[tokens.Length];
        session.Generate(request with { GuidanceScale = 0 }, plain);
        Assert.NotEqual(plain, tokens);

        var (code, stderr) = await CliRunner.Run("--weights", weights, "--class", "PlayingGuitar", "--text-tokenizer", TextModel, "--cfg-scale", "1.5", "--seed", "7",
            "--tokens-out", _dir.File("o.txt"), "--backend", "cpu", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(tokens, Fixtures.Tokens(_dir.File("o.txt")));
    }

    [Fact]
    public async Task GuidanceIsRefusedWithoutAnUnconditionalEmbeddingOrACondition()
    {
        string bare = TinyModels.TextHybrid(_dir.File("bare.safetensors"), unconditional: false);
        using (var model = await Load(bare))
        {
            using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 1 });
            var request = new GenerationRequest { Prompt = [.. Enumerable.Repeat(5, 8), 0], GuidanceScale = 1f };
            var e = Assert.Throws<GenerationException>(() => session.Plan(request));
            Assert.Contains("needs transformer.uncond_embedding", e.Message);
            Assert.Contains(bare, e.Message);
            Assert.Throws<GenerationException>(() => model.CreateSession(new SessionOptions { Guidance = true }));
        }
        var (code, stderr) = await CliRunner.Run("--weights", bare, "--class", "PlayingGuitar", "--text-tokenizer", TextModel, "--cfg-scale", "1.5",
            "--tokens-out", _dir.File("o.txt"), "--backend", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("needs transformer.uncond_embedding", stderr);
        Assert.False(File.Exists(_dir.File("o.txt")));

        using var frame = await Load(Fixtures.PathOf("frame_model.safetensors"));
        using var frameSession = frame.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 1 });
        var noCondition = Assert.Throws<GenerationException>(() => frameSession.Plan(new GenerationRequest { Prompt = Fixtures.Tokens("frame_prompt.txt"), GuidanceScale = 1f }));
        Assert.Contains("needs a condition of that length", noCondition.Message);
        var nan = Assert.Throws<GenerationException>(() => frameSession.Plan(new GenerationRequest { Prompt = Fixtures.Tokens("frame_prompt.txt"), GuidanceScale = float.NaN }));
        Assert.Contains("finite", nan.Message);
    }

    [Fact]
    public void TheBlendRoundsBothProductsAndTheDifference()
    {
        float[] own = [1f, -2f, 3.5f, 0f, 0.1f], unconditional = [0.5f, 1f, 3.5f, -4f, 0.3f];
        float t = 1.5f;
        var expected = own.Select((c, i) => (float)((float)((1 + t) * c) - (float)(t * unconditional[i]))).ToArray();
        Guidance.Blend(own, unconditional, t);
        Assert.Equal(expected, own);
        Assert.Equal([1.75f, -6.5f, 3.5f, 6f], own[..4]);
    }

    /// <summary>
    /// The backend blends the two streams' final-normed rows before the vocabulary head (SequenceFeed.GuidesSequence):
    /// the guided logits equal the blend of both streams' own logits (MODEL.md §5) to rounding, the unconditional stream
    /// gets no logits, and a pairing that cannot be blended is refused, naming the feed.
    /// </summary>
    [Fact]
    public void TheBlendBeforeTheHeadGivesTheBlendOfTheLogits()
    {
        var fixture = Fixtures.Get("hybrid_cfg");
        var file = SafetensorsFile.Open(Fixtures.PathOf(fixture.Model)); // owned by the weights from here
        using var weights = TransformerWeights.Load(file, ModelConfigReader.Read(file, new ModelConfigOverrides(), NullLogger.Instance), NullLogger.Instance);
        using var backend = new CpuBackend(weights);
        int[] prompt = Fixtures.Tokens(fixture.Prompt);
        int n = prompt.Length, rows = 4, v = weights.Config.VocabSize;
        const float t = 1.5f;
        using var session = backend.CreateSession(2, n, 2 * n, 2 * rows, 2);
        var own = new SequenceFeed(0, n, AttentionMask.Hybrid(fixture.CondLength, fixture.BlockSize), rows);
        var unconditional = own with { Sequence = 1, UnconditionalRows = fixture.CondLength };

        session.Forward([.. prompt, .. prompt], [own, unconditional]);
        float[] expected = new float[rows * v], other = new float[rows * v];
        session.CopyLogits(0, expected);
        session.CopyLogits(1, other);
        var plain = expected.ToArray();
        Guidance.Blend(expected, other, t);

        session.Reset(0);
        session.Reset(1);
        session.Forward([.. prompt, .. prompt], [own, unconditional with { GuidesSequence = 0, GuidanceScale = t }]);
        Assert.Equal(rows, session.LogitRowsOf(0));
        Assert.Equal(0, session.LogitRowsOf(1));
        var guided = new float[rows * v];
        session.CopyLogits(0, guided);
        double maxDiff = expected.Zip(guided, (a, b) => (double)Math.Abs(a - b)).Max(), maxRef = expected.Max(a => (double)Math.Abs(a));
        Assert.True(maxDiff <= 1e-5 * maxRef, $"guided logits differ from the logit blend by {maxDiff:E3} (max |logit| {maxRef:F3})");
        Assert.True(plain.Zip(guided, (a, b) => Math.Abs(a - b)).Max() > 1e-2 * maxRef, "the guidance changed nothing");

        foreach (var (first, second, message) in new (SequenceFeed, SequenceFeed, string)[]
        {
            (own, unconditional with { GuidesSequence = 1 }, "feed 1 guides its own sequence 1"),
            (own with { GuidesSequence = 1 }, unconditional with { GuidesSequence = 0 }, "feed 0 guides sequence 1, which is itself a guiding stream"),
            (own, unconditional with { GuidesSequence = 0, LogitRows = 2 }, "feed 1 guides sequence 0 with 2 logit rows, that sequence has 4"),
            (own, unconditional with { GuidesSequence = 0, GuidanceScale = float.NaN }, "feed 1: the guidance scale must be finite"),
        })
        {
            session.Reset(0);
            session.Reset(1);
            var e = Assert.ThrowsAny<ArgumentException>(() => session.Forward([.. prompt, .. prompt], [first, second]));
            Assert.Contains(message, e.Message);
        }
        session.Reset(0);
        session.Reset(1);
        var alone = Assert.ThrowsAny<ArgumentException>(() => session.Forward(prompt, [unconditional with { GuidesSequence = 0 }]));
        Assert.Contains("feed 0 guides sequence 0, which is not fed in this call", alone.Message);
        Assert.Equal(0, session.LengthOf(1)); // refused before any work
    }
}
