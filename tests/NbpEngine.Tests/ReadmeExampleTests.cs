using NbpEngine.Pipeline;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer.Text;

namespace NbpEngine.Tests;

/// <summary>README's embedding examples, compiled and run so they cannot drift from the API.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public async Task TheReadmeEmbeddingExampleRuns()
    {
        string path = Fixtures.PathOf("frame_model.safetensors");
        int[] promptIds = Fixtures.Tokens("frame_prompt.txt");
        var streamed = new List<int>();

        // --- README example begins ---
        using var model = await NbpModel.LoadAsync(path);                      // weights: once, shareable
        using var session = model.CreateSession(new SessionOptions { Threads = 2 }); // owns its KV cache
        var request = new GenerationRequest
        {
            Prompt = promptIds,                                                 // 2 latent frames of ids
            Sampling = new SamplingSettings(Greedy: false, Temperature: 1f, TopK: 100, TopP: 0.9f),
            Seed = 42,
        };
        await foreach (var block in session.GenerateAsync(request))
            streamed.AddRange(block.Tokens);                                    // one block of B ids per step
        // --- README example ends ---

        // The streaming API and the allocation-free span API give the same tokens.
        var direct = new int[session.Plan(request).TokenCount];
        session.Generate(request, direct);
        Assert.Equal(direct, streamed);
        Assert.Equal(192, streamed.Count);
    }

    [Fact]
    public async Task TheReadmePipelineExampleRuns()
    {
        using var dir = new TempDir();
        string weightsPath = TinyModels.FullVocabulary(dir.File("tiny.safetensors")), tokenizerPath = Fixtures.PathOf("tokenizer_model.safetensors");
        string framesFolder = dir.File("clip");
        VideoTests.WriteFixtureFrames(framesFolder, 5, size: 64);

        // --- README pipeline example begins ---
        using var pipeline = await NbpPipeline.LoadAsync(weightsPath, tokenizerPath,
            new PipelineOptions { Backend = BackendKind.Auto, Threads = 2 });  // CUDA when present, else the CPU
        var clip = VideoClip.Read(framesFolder, pipeline.Model.Config.Resolution, frames: 5); // PNG folder or video
        var prediction = pipeline.PredictFrames(clip, new GenerationRequest { Prompt = [], Seed = 42, Sampling = SamplingSettings.Published });
        byte[][] rgb = prediction.Video.ToRgbFrames();                         // 5 conditioning + 12 predicted frames
        // --- README pipeline example ends ---

        Assert.Equal(17, rgb.Length);
        Assert.Equal(3 * 64, prediction.Generation.Tokens.Length); // 3 latent frames: the 12 predicted frames
        Assert.Equal(0, prediction.UndecodedTokens);
        // the pipeline's generation is the session API's, token for token
        using var session = pipeline.Model.CreateSession(new SessionOptions { Threads = 2, Backend = BackendKind.Cpu });
        var request = new GenerationRequest { Prompt = prediction.PromptCodes, Seed = 42, Sampling = SamplingSettings.Published };
        var direct = new int[session.Plan(request).TokenCount];
        session.Generate(request, direct);
        Assert.Equal(direct, prediction.Generation.Tokens);
    }

    [Fact]
    public async Task TheReadmeBatchAndGuidanceExampleRuns()
    {
        using var dir = new TempDir();
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"));
        using var ucfModel = await NbpModel.LoadAsync(TinyModels.TextHybrid(dir.File("ucf.safetensors")));
        string llamaTokenizerPath = Fixtures.PathOf("text/tokenizer.model");
        var requests = Enumerable.Range(0, 6)
            .Select(i => new GenerationRequest { Prompt = Fixtures.Tokens("frame_prompt.txt"), Steps = 2 + i % 3, Seed = (ulong)i, Sampling = SamplingSettings.Published })
            .ToArray();
        var saved = new Dictionary<int, int[]>();
        void Save(int index, int[]? tokens) => saved.Add(index, tokens!);

        // --- README batch example begins ---
        using var batch = model.CreateBatchSession(slots: 4, new SessionOptions { Threads = 2 });
        foreach (var result in batch.Generate(requests))                     // any prompts, settings, seeds, steps
            Save(result.Index, result.Tokens);                                 // the tokens each request gets alone
        var text = TextPromptTokenizer.Load(llamaTokenizerPath);              // LLaMA's SentencePiece tokenizer.model
        var ucf = new GenerationRequest { Prompt = text.ClassPrompt("ApplyEyeMakeup", ucfModel.Config), GuidanceScale = 1.5f };
        // --- README batch example ends ---

        using var session = model.CreateSession(new SessionOptions { Threads = 2 });
        for (int i = 0; i < requests.Length; i++)
        {
            var alone = new int[session.Plan(requests[i]).TokenCount];
            session.Generate(requests[i], alone);
            Assert.Equal(alone, saved[i]);
        }
        using var ucfSession = ucfModel.CreateSession(new SessionOptions { Threads = 2 });
        Assert.Equal(8, ucfSession.Generate(ucf, new int[ucfSession.Plan(ucf).TokenCount]));
    }

    [Fact]
    public async Task StreamingStopsWhenCancelled()
    {
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"));
        using var session = model.CreateSession(new SessionOptions { Threads = 2 });
        using var cts = new CancellationTokenSource();
        int blocks = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(new GenerationRequest { Prompt = Fixtures.Tokens("frame_prompt.txt") }, null, cts.Token))
                if (++blocks == 3) cts.Cancel();
        });
        Assert.Equal(3, blocks);
    }
}
