using System.Diagnostics;
using NbpEngine.Core;
using NbpEngine.Kernels.Backend;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Generation;
using NbpEngine.Tokenizer;

namespace NbpEngine.Pipeline;

/// <summary>Seconds per phase of one generation; the session's are the first session's KV cache (and backend: packing or upload).</summary>
public sealed record GenerationTimings(double SessionSeconds, double PrefillSeconds, double StepSeconds)
{
    public double TotalSeconds => PrefillSeconds + StepSeconds;
}

/// <summary>Generated model-vocabulary ids (the middle-bos of hybrid generation removed) and how they were made.</summary>
public sealed record GenerationResult(int[] Tokens, GenerationPlan Plan, string BackendName, GenerationTimings Timings);

/// <summary>
/// Frame prediction: the conditioning frames' codes, the generation, and the decoded video of conditioning plus
/// predicted latent frames. <see cref="UndecodedTokens"/> generated tokens did not fill a latent frame.
/// </summary>
public sealed record FramePrediction(VideoClip Video, int[] PromptCodes, GenerationResult Generation, CodecTiming Encode, CodecTiming Decode, int UndecodedTokens);

/// <summary>
/// The whole job in one object: a transformer (and optionally a video tokenizer) loaded once, on the backend
/// the options ask for, and the encode -> generate -> decode pipeline with progress, cancellation and timings.
/// nbp-run, nbp-bench and hosts call this; <see cref="Model"/> gives the lower-level session API.
/// Thread-safe for concurrent <see cref="Generate"/> calls (each makes its own session).
/// </summary>
public sealed class NbpPipeline : IDisposable
{
    public NbpModel Model { get; }
    /// <summary>The video tokenizer, when one was loaded.</summary>
    public VideoCodec? Codec { get; }
    public PipelineOptions Options { get; }
    /// <summary>Seconds to read and check the transformer's weights.</summary>
    public double LoadSeconds { get; }

    private NbpPipeline(NbpModel model, VideoCodec? codec, PipelineOptions options, double loadSeconds)
    {
        Model = model;
        Codec = codec;
        Options = options;
        LoadSeconds = loadSeconds;
    }

    /// <summary>Loads the transformer (and the tokenizer when <paramref name="tokenizer"/> is given) with the ILGPU backends available.</summary>
    public static async Task<NbpPipeline> LoadAsync(string weights, string? tokenizer = null, PipelineOptions? options = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new PipelineOptions();
        VideoCodec? codec = tokenizer is null ? null : VideoCodec.Open(tokenizer, options.Backend, options.Conv, options.TensorCores);
        try
        {
            var clock = Stopwatch.StartNew();
            var load = progress is null ? null : new SynchronousProgress<float>(f => progress.Report(new PipelineProgress(PipelinePhase.Load, f)));
            var model = await NbpModel.LoadAsync(weights, ModelOptions(options), load, cancellationToken);
            try
            {
                if (codec is not null) CheckCodebook(model.Config, codec);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            return new NbpPipeline(model, codec, options, clock.Elapsed.TotalSeconds);
        }
        catch
        {
            codec?.Dispose();
            throw;
        }
    }

    /// <summary>The model options a pipeline loads with: the CPU runtime plus the ILGPU backends.</summary>
    public static NbpModelOptions ModelOptions(PipelineOptions options) => new()
    {
        Overrides = options.Overrides, LoggerFactory = options.LoggerFactory, CpuWeights = options.CpuWeights, CheckFinite = options.CheckFinite,
        DeviceBackends = IlgpuBackends.Provider,
    };

    /// <summary>A session on the pipeline's backend sized for <paramref name="plan"/>.</summary>
    public NbpSession CreateSession(GenerationPlan plan) => Model.CreateSession(new SessionOptions
    {
        Backend = Options.Backend, DeviceWeights = Options.DeviceWeights, TensorCores = Options.TensorCores, CudaGraphs = Options.CudaGraphs, Threads = Options.Threads,
        Capacity = plan.PositionsNeeded, MaxBlockSize = plan.BlockSize,
    });

    /// <summary>
    /// Generates from <paramref name="request"/>'s prompt (model-vocabulary ids). <paramref name="afterPrefill"/> runs once, after the
    /// prefill, with the session (to read the step-0 logits, say).
    /// </summary>
    public GenerationResult Generate(GenerationRequest request, IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        Action<NbpSession>? afterPrefill = null)
    {
        var plan = GenerationPlan.Resolve(request, Model.Config);
        var clock = Stopwatch.StartNew();
        using var session = CreateSession(plan);
        double sessionSeconds = clock.Elapsed.TotalSeconds;
        var generator = session.CreateGenerator(request);
        var tokens = new int[plan.TokenCount];
        int written = 0;
        double prefill = 0;
        clock.Restart();
        progress?.Report(new PipelineProgress(PipelinePhase.Prefill, 0, 0, 1));
        while (!generator.IsComplete)
        {
            cancellationToken.ThrowIfCancellationRequested();
            written += generator.Step(tokens.AsSpan(written));
            if (generator.StepIndex == 1)
            {
                prefill = clock.Elapsed.TotalSeconds;
                progress?.Report(new PipelineProgress(PipelinePhase.Prefill, 1, 1, 1));
                afterPrefill?.Invoke(session);
            }
            else progress?.Report(new PipelineProgress(PipelinePhase.Steps, (generator.StepIndex - 1.0) / Math.Max(1, plan.Steps - 1), generator.StepIndex - 1, plan.Steps - 1));
        }
        return new GenerationResult(tokens, plan, session.BackendName, new GenerationTimings(sessionSeconds, prefill, clock.Elapsed.TotalSeconds - prefill));
    }

    /// <summary>
    /// Frame prediction from real frames (the K600 task): encodes <paramref name="conditioning"/>, generates from its codes with
    /// <paramref name="request"/>'s settings (its prompt is replaced), and decodes conditioning plus predicted latent frames.
    /// Everything that can be checked is checked before the encode: a tokenizer with both halves, the frame size the model
    /// was trained on, and enough steps to predict at least one latent frame.
    /// </summary>
    public FramePrediction PredictFrames(VideoClip conditioning, GenerationRequest request, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        CheckConditioning(conditioning);
        var cfg = Model.Config;
        int perFrame = LatentFrameTokens;
        int promptLength = VideoTokenizer.LatentFrames(conditioning.Frames) * perFrame;
        var plan = GenerationPlan.Resolve(request with { Prompt = new int[promptLength] }, cfg);
        if (plan.TokenCount < perFrame)
            throw new NbpInputException($"{plan.Steps} steps generate {plan.TokenCount} tokens, less than one latent frame ({perFrame}): no frame would be predicted");

        var (codes, prompt, encode) = EncodeConditioning(conditioning, progress);
        cancellationToken.ThrowIfCancellationRequested();
        var generation = Generate(request with { Prompt = prompt }, progress, cancellationToken);
        var (video, decode, undecoded) = DecodePrediction(prompt, generation.Tokens, progress);
        return new FramePrediction(video, codes, generation, encode, decode, undecoded);
    }

    /// <summary>Tokens of one latent frame of the model's resolution.</summary>
    private int LatentFrameTokens => (Model.Config.Resolution / ModelConfig.SpatialFactor) * (Model.Config.Resolution / ModelConfig.SpatialFactor);

    /// <summary>A tokenizer with both halves, and frames of the size the model was trained on.</summary>
    private VideoCodec CheckConditioning(VideoClip conditioning)
    {
        var codec = Codec ?? throw new NbpInputException("frame prediction needs a video tokenizer: load the pipeline with one");
        var cfg = Model.Config;
        if (!codec.Model.HasEncoder || !codec.Model.HasDecoder)
            throw new NbpInputException($"{codec.Model.SourcePath}: frame prediction needs the tokenizer's encoder and decoder, the file has {(codec.Model.HasEncoder ? "no decoder" : "no encoder")}");
        if (conditioning.Height != cfg.Resolution || conditioning.Width != cfg.Resolution)
            throw new NbpInputException($"conditioning frames are {conditioning.Width}x{conditioning.Height}, the model generates {cfg.Resolution}x{cfg.Resolution}");
        return codec;
    }

    /// <summary>
    /// Every video id the model can emit must be a code of the tokenizer (its FSQ levels set how many there are), checked
    /// when the pipeline loads, so generation never runs for tokens that could not be decoded.
    /// </summary>
    private static void CheckCodebook(ModelConfig config, VideoCodec codec)
    {
        int vocabulary = config.VideoVocabSize, codebook = codec.Model.CodebookSize;
        if (vocabulary > codebook)
            throw new NbpInputException($"{codec.Model.SourcePath}: the tokenizer has {codebook} codes (FSQ levels {codec.Model.Levels}), " +
                                        $"fewer than the model's video vocabulary {vocabulary}: generated codes could not be decoded");
    }

    /// <summary>
    /// Conditioning frames as a frame-prediction prompt: their FSQ codes, and those codes shifted into the model
    /// vocabulary (what <see cref="GenerationRequest.Prompt"/> takes). For callers that generate elsewhere (a batch
    /// session) and decode with <see cref="DecodePrediction"/>.
    /// </summary>
    public (int[] Codes, int[] Prompt, CodecTiming Timing) EncodeConditioning(VideoClip conditioning, IProgress<PipelineProgress>? progress = null)
    {
        var codec = CheckConditioning(conditioning);
        var cfg = Model.Config;
        var (codes, timing) = codec.Encode(conditioning, Options.ThreadCount, Fraction(progress, PipelinePhase.Encode));
        if (codes.Max() >= cfg.VideoVocabSize)
            throw new NbpInputException($"{codec.Model.SourcePath}: codes reach {codes.Max()}, beyond the model's video vocabulary {cfg.VideoVocabSize}");
        return (codes, codes.Select(c => c + cfg.VideoIdOffset).ToArray(), timing);
    }

    /// <summary>
    /// Prompt and generated ids decoded to frames: shift removed and clamped as MODEL.md §3 says, whole latent frames
    /// only (the count of trailing tokens left out is returned).
    /// </summary>
    public (VideoClip Video, CodecTiming Timing, int UndecodedTokens) DecodePrediction(int[] prompt, int[] generated, IProgress<PipelineProgress>? progress = null)
    {
        var codec = Codec ?? throw new NbpInputException("decoding needs a video tokenizer: load the pipeline with one");
        var cfg = Model.Config;
        int perFrame = LatentFrameTokens;
        var all = prompt.Concat(generated).Select(id => Math.Clamp(id - cfg.VideoIdOffset, 0, cfg.VideoVocabSize - 1)).ToArray();
        int whole = all.Length / perFrame * perFrame;
        var (video, timing) = codec.Decode(all.AsSpan(0, whole), cfg.Resolution / ModelConfig.SpatialFactor, Options.ThreadCount, Fraction(progress, PipelinePhase.Decode));
        return (video, timing, all.Length - whole);
    }

    /// <summary>A tokenizer progress fraction as a pipeline phase's progress.</summary>
    public static IProgress<float>? Fraction(IProgress<PipelineProgress>? progress, PipelinePhase phase) =>
        progress is null ? null : new SynchronousProgress<float>(f => progress.Report(new PipelineProgress(phase, f)));

    public void Dispose()
    {
        Model.Dispose();
        Codec?.Dispose();
    }
}

/// <summary>IProgress that reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool and may reorder).</summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
