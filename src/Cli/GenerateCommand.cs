using System.CommandLine;
using System.CommandLine.Invocation;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NbpEngine.Cli.IO;
using NbpEngine.Kernels.Device;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Loader.TorchCheckpoint;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Runtime.Threading;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Text;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Cli;

/// <summary>
/// <c>nbp-run</c>: generate tokens from a prompt. A thin client of <see cref="NbpModel"/> and
/// <see cref="NbpSession"/>; everything it does a host can do through the same API.
/// </summary>
public static class GenerateCommand
{
    /// <summary>
    /// Parses and runs nbp-run. A usage error (unknown option, bad value, missing argument) is one line and a hint,
    /// exit 2, before anything runs; help and the commands themselves behave as System.CommandLine defines.
    /// </summary>
    public static async Task<int> InvokeAsync(string[] args)
    {
        var parse = Build().Parse(args);
        Report.Quiet = parse.GetValue<bool>("--quiet");
        if (parse.Action is ParseErrorAction)
        {
            // a bad value says more than a missing option that the same line also lacks
            var error = parse.Errors.FirstOrDefault(e => !e.Message.Contains("required", StringComparison.OrdinalIgnoreCase)) ?? parse.Errors[0];
            string first = string.Join(' ', error.Message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Replace("System.UInt64", "a non-negative integer").Replace("System.Int32", "an integer").Replace("System.Single", "a number");
            Console.Error.WriteLine($"nbp-run: error: {first}");
            string command = parse.CommandResult.Command == parse.RootCommandResult.Command ? "nbp-run" : "nbp-run " + parse.CommandResult.Command.Name;
            Console.Error.WriteLine($"nbp-run: see '{command} --help'");
            return 2;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            // not the user's mistake (those exit 2 inside the commands): one line, the stack trace only on request
            Console.Error.WriteLine($"nbp-run: internal error: {e.GetType().Name}: {e.Message}");
            Console.Error.WriteLine(parse.GetValue<bool>("--verbose") ? e.ToString() : "nbp-run: run again with --verbose for the stack trace, and please report it");
            return 1;
        }
    }

    public static RootCommand Build()
    {
        var weights = new Option<string?>("--weights") { Description = "safetensors checkpoint (MODEL.md §2)" };
        var promptTokens = new Option<string?>("--prompt-tokens") { Description = "file of whitespace-separated model-vocabulary ids fed in the prefill" };
        var textPrompt = new Option<string?>("--prompt") { Description = "UCF (hybrid) model: the condition as text, through --text-tokenizer" };
        var className = TextCommands.ClassOption();
        var textTokenizer = TextCommands.TextTokenizerOption();
        var padding = TextCommands.PaddingOption();
        var tokensOut = new Option<string?>("--tokens-out") { Description = "file for the generated ids (middle-bos removed)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "video tokenizer: with --input and --output, frame prediction from real frames to a video" };
        var input = new Option<string?>("--input") { Description = "conditioning frames: PNG folder or video file (the first 5 frames are used for K600)" };
        var output = new Option<string?>("--output") { Description = "prediction: .mp4/.gif/.apng (via ffmpeg) or a folder; PNG frames are always written" };
        var fps = new Option<int>("--fps") { Description = "frame rate of the output video", DefaultValueFactory = _ => 8 };
        var steps = new Option<int?>("--steps") { Description = "forward steps (default: one whole clip)" };
        var blockSize = new Option<int?>("--block-size") { Description = "tokens per step B (default: token_number_per_step; 1 = NTP)" };
        var mode = new Option<string?>("--mode") { Description = "frame | hybrid (default: hybrid when the checkpoint says so)" };
        mode.AcceptOnlyFromAmong("frame", "hybrid");
        var condLength = new Option<int?>("--cond-length") { Description = "condition prefix length L" };
        var greedy = new Option<bool>("--greedy") { Description = "argmax decoding" };
        var topK = new Option<int?>("--top-k") { Description = "keep logits >= the k-th largest (0 = off; default 16000)" };
        var topP = new Option<float?>("--top-p") { Description = "nucleus mass (1 = off; default 0.9)" };
        var temperature = new Option<float?>("--temperature") { Description = "logit divisor (default 1)" };
        var seed = new Option<ulong>("--seed") { Description = "random seed; same seed, input and backend give the same tokens", DefaultValueFactory = _ => 0 };
        var logitsOut = new Option<string?>("--logits-out") { Description = "write the step-0 logits, float32 [rows, vocab], as .npy" };
        var threads = new Option<int?>("--threads") { Description = "CPU threads (default: all cores)" };
        var backend = new Option<string>("--backend") { Description = "cpu | cuda | ilgpu-cpu | auto (CUDA when present, else cpu)", DefaultValueFactory = _ => "auto" };
        backend.AcceptOnlyFromAmong("cpu", "cuda", "ilgpu-cpu", "auto");
        var deviceWeights = new Option<string>("--device-weights") { Description = "weight storage on an ILGPU device: f32 | f16 | bf16", DefaultValueFactory = _ => "f32" };
        deviceWeights.AcceptOnlyFromAmong("f32", "f16", "bf16");
        var tensorCores = new Option<bool>("--tensor-cores") { Description = "ILGPU backends: prefill matmuls on tensor cores (fp16-rounded operands)" };
        // in-place by default here: one run of nbp-run generates one video, and packing K600's 3.1 GB of
        // matrices (~5 s on the 2-core VM) costs more than it saves (~2.4 s); long-lived hosts pack (the API default)
        var cpuWeights = new Option<string>("--cpu-weights") { Description = "CPU backend: in-place (no extra memory) | packed (a packed copy of the matrices: ~25% faster generation after a one-time packing)", DefaultValueFactory = _ => "in-place" };
        cpuWeights.AcceptOnlyFromAmong("packed", "in-place");
        var statsJson = new Option<string?>("--stats-json") { Description = "write timings (load, prefill, steps) as JSON" };
        var quiet = new Option<bool>("--quiet") { Description = "no progress or detail lines (errors and what was written still appear)", Recursive = true };
        var skipFinite = new Option<bool>("--skip-finite-check") { Description = "do not scan the weights for NaN/Inf when loading (trusted multi-GB files)" };
        // Config overrides (MODEL.md §2: the CLI can override any metadata value).
        var nHead = new Option<int?>("--n-head") { Description = "override n_head" };
        var modelBlock = new Option<int?>("--token-number-per-step") { Description = "override the checkpoint's token_number_per_step" };
        var videoVocab = new Option<int?>("--vocab-size") { Description = "override the video vocabulary size (metadata vocab_size)" };
        var hybrid = new Option<bool?>("--hybrid") { Description = "override the hybrid flag" };
        var condTokens = new Option<int?>("--cond-token-num") { Description = "override cond_token_num" };
        var resolution = new Option<int?>("--resolution") { Description = "override resolution" };
        var sequenceLength = new Option<int?>("--sequence-length") { Description = "override sequence_length (frames per clip)" };

        var root = new RootCommand("nbp-run: Next-Block-Prediction video token generation")
        {
            weights, promptTokens, textPrompt, className, textTokenizer, padding, tokensOut, tokenizer, input, output, fps, steps, blockSize, mode, condLength, greedy, topK, topP, temperature, seed,
            logitsOut, threads, backend, deviceWeights, tensorCores, cpuWeights, statsJson, quiet, skipFinite, nHead, modelBlock, videoVocab, hybrid, condTokens, resolution, sequenceLength,
        };
        root.Subcommands.Add(TokenizerCommands.Decode());
        root.Subcommands.Add(TokenizerCommands.Encode());
        root.Options.Add(new Option<bool>("--verbose") { Description = "print the stack trace of an internal error", Recursive = true });
        root.Subcommands.Add(ConvertCommand.Build());
        root.Subcommands.Add(TextCommands.TextIds());
        root.Subcommands.Add(BatchCommand.Build());
        root.SetAction(async (parse, ct) =>
        {
            try
            {
                if (parse.GetValue(className) is "list") return TextCommands.ListClasses();
                if (parse.GetValue(weights) is null) throw new CliInputException("--weights is required (a safetensors checkpoint)");
                bool video = parse.GetValue(tokenizer) is not null || parse.GetValue(input) is not null || parse.GetValue(output) is not null;
                bool words = parse.GetValue(textPrompt) is not null || parse.GetValue(className) is not null;
                if (video && (parse.GetValue(tokenizer) is null || parse.GetValue(input) is null || parse.GetValue(output) is null))
                    throw new CliInputException("frame prediction from video needs --tokenizer, --input and --output together");
                if ((words ? 1 : 0) + (parse.GetValue(promptTokens) is null ? 0 : 1) + (video ? 1 : 0) != 1 || (!video && parse.GetValue(tokensOut) is null))
                    throw new CliInputException("give --tokens-out with one of --prompt-tokens or --prompt/--class (token generation), " +
                                                "or --tokenizer, --input and --output (frame prediction from video)");
                bool anySampling = parse.GetValue(topK) is not null || parse.GetValue(topP) is not null || parse.GetValue(temperature) is not null;
                if (parse.GetValue(greedy) && anySampling) throw new CliInputException("--greedy cannot be combined with --top-k, --top-p or --temperature");
                var sampling = parse.GetValue(greedy)
                    ? SamplingSettings.GreedyDecoding
                    : new SamplingSettings(false, parse.GetValue(temperature) ?? 1f, parse.GetValue(topK) ?? 16000, parse.GetValue(topP) ?? 0.9f);
                var options = new Options(
                    parse.GetValue(weights)!, parse.GetValue(promptTokens), parse.GetValue(tokensOut), parse.GetValue(logitsOut), parse.GetValue(statsJson),
                    new ModelConfigOverrides
                    {
                        HeadCount = parse.GetValue(nHead), BlockSize = parse.GetValue(modelBlock), VideoVocabSize = parse.GetValue(videoVocab),
                        Hybrid = parse.GetValue(hybrid), CondTokenCount = parse.GetValue(condTokens), Resolution = parse.GetValue(resolution),
                        SequenceLength = parse.GetValue(sequenceLength),
                    },
                    parse.GetValue(mode) switch { "frame" => GenerationMode.Frame, "hybrid" => GenerationMode.Hybrid, _ => null },
                    parse.GetValue(blockSize), parse.GetValue(condLength), parse.GetValue(steps), sampling, parse.GetValue(seed),
                    parse.GetValue(threads),
                    parse.GetValue(backend) switch { "cpu" => BackendKind.Cpu, "cuda" => BackendKind.Cuda, "ilgpu-cpu" => BackendKind.IlgpuCpu, _ => BackendKind.Auto },
                    parse.GetValue(deviceWeights) switch { "f16" => WeightStorage.F16, "bf16" => WeightStorage.BF16, _ => WeightStorage.F32 },
                    parse.GetValue(tensorCores), parse.GetValue(cpuWeights) == "in-place" ? CpuWeightLayout.InPlace : CpuWeightLayout.Packed,
                    parse.GetValue(tokenizer), parse.GetValue(input), parse.GetValue(output), parse.GetValue(fps), parse.GetValue(skipFinite),
                    parse.GetValue(textPrompt), parse.GetValue(className), parse.GetValue(textTokenizer), parse.GetValue(padding));
                return await RunAsync(options, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl+C / SIGTERM: the step in flight finished, nothing was written (outputs appear only whole)
                Console.Error.WriteLine("nbp-run: interrupted; no output written");
                return Interrupted;
            }
            catch (Exception e) when (IsInputError(e))
            {
                Console.Error.WriteLine($"nbp-run: error: {e.Message}");
                return 2;
            }
        });
        return root;
    }

    private static bool IsInputError(Exception e) => e is CliInputException or InvalidDataException or SafetensorsFormatException or ModelConfigException
        or WeightShapeException or WeightValueException or GenerationException or CheckpointFormatException or OutputPathException or FileNotFoundException or ArgumentException or NotSupportedException
        or InvalidOperationException;

    private sealed record Options(string Weights, string? PromptTokens, string? TokensOut, string? LogitsOut, string? StatsJson,
        ModelConfigOverrides Overrides, GenerationMode? Mode, int? BlockSize, int? CondLength, int? Steps, SamplingSettings Sampling,
        ulong Seed, int? Threads, BackendKind Backend, WeightStorage DeviceWeights, bool TensorCores, CpuWeightLayout CpuWeights,
        string? Tokenizer, string? Input, string? Output, int Fps, bool SkipFiniteCheck,
        string? Text, string? ClassName, string? TextTokenizer, PaddingSide Padding);

    /// <summary>Exit code after an interrupt (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;

    internal static void CheckThreads(int? threads)
    {
        if (threads is < 1 or > WorkerPool.MaxThreads) throw new CliInputException($"--threads must be in [1, {WorkerPool.MaxThreads}], found {threads}");
    }

    /// <summary>Runs a subcommand body with the same one-line error reporting as generation.</summary>
    internal static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsInputError(e))
        {
            Console.Error.WriteLine($"nbp-run: error: {e.Message}");
            return 2;
        }
    }

    private static async Task<int> RunAsync(Options o, CancellationToken ct)
    {
        CheckThreads(o.Threads);
        // every output checked before anything is loaded: a bad path must not cost a whole generation
        string?[] inputs = [o.Weights, o.Tokenizer, o.PromptTokens, o.Input, o.TextTokenizer];
        OutputChecks.Files(inputs, ("--tokens-out", o.TokensOut), ("--logits-out", o.LogitsOut), ("--stats-json", o.StatsJson));
        if (o.Output is not null) OutputChecks.Frames(o.Output, o.Fps, inputs);
        VideoTokenizer? videoTokenizer = o.Tokenizer is null ? null : new VideoTokenizer(o.Tokenizer);
        using var disposeTokenizer = videoTokenizer;
        // the tokenizer runs where the transformer does: the ILGPU kernels for cuda / ilgpu-cpu
        using var deviceTokenizer = videoTokenizer is null ? null : TokenizerCommands.OpenDevice(videoTokenizer, o.Backend switch
        {
            BackendKind.Cuda => "cuda", BackendKind.IlgpuCpu => "ilgpu-cpu", BackendKind.Auto => "auto", _ => "cpu",
        });
        using var loggers = new StderrLoggerFactory(LogLevel.Information);
        var clock = Stopwatch.StartNew();
        using var model = await NbpModel.LoadAsync(o.Weights, new NbpModelOptions { Overrides = o.Overrides, LoggerFactory = loggers, CpuWeights = o.CpuWeights, CheckFinite = !o.SkipFiniteCheck }, null, ct);
        double loadSeconds = clock.Elapsed.TotalSeconds;
        var cfg = model.Config;
        Console.Error.WriteLine($"nbp-run: {o.Weights}: {cfg.LayerCount} layers, {cfg.HeadCount} heads, C = {cfg.EmbeddingSize}, V = {cfg.VocabSize}, " +
                                $"P = {cfg.PositionCount}, B = {cfg.BlockSize}{(cfg.Hybrid ? ", hybrid" : "")} (loaded in {loadSeconds:F2} s)");

        int latent = cfg.Resolution / VideoTokenizer.SpatialFactor;
        int[] prompt;
        byte[][]? conditioningFrames = null;
        if (videoTokenizer is not null)
        {
            // K600 frame prediction: encode the first 5 frames (2 latent frames) into the prompt
            int frames = 5;
            (var codes, conditioningFrames) = TokenizerCommands.EncodeInput(videoTokenizer, deviceTokenizer, o.Input!, frames, cfg.Resolution, o.Threads);
            if (codes.Max() >= cfg.VideoVocabSize)
                throw new CliInputException($"{o.Tokenizer}: codes reach {codes.Max()}, beyond the model's video vocabulary {cfg.VideoVocabSize}");
            prompt = codes.Select(c => c + cfg.VideoIdOffset).ToArray();
        }
        else if (o.Text is not null || o.ClassName is not null)
        {
            var text = o.TextTokenizer is null ? null : TextPromptTokenizer.Load(o.TextTokenizer);
            (string words, prompt) = TextCommands.HybridPrompt(o.Text, o.ClassName, text, o.Padding, cfg);
            Console.Error.WriteLine($"nbp-run: condition '{words}' -> {string.Join(' ', prompt)}");
        }
        else prompt = TokenFile.Read(o.PromptTokens!, cfg.PositionCount, $" (the model has {cfg.PositionCount} positions)");
        var request = new GenerationRequest
        {
            Prompt = prompt, Mode = o.Mode, BlockSize = o.BlockSize, CondLength = o.CondLength, Steps = o.Steps, Sampling = o.Sampling, Seed = o.Seed,
        };
        var plan = GenerationPlan.Resolve(request, cfg);
        if (videoTokenizer is not null && plan.TokenCount < latent * latent)
            throw new CliInputException($"{plan.Steps} steps generate {plan.TokenCount} tokens, less than one latent frame ({latent * latent}): no frame would be predicted");
        clock.Restart();
        using var session = model.CreateSession(new SessionOptions
        {
            Backend = o.Backend, DeviceWeights = o.DeviceWeights, TensorCores = o.TensorCores, Threads = o.Threads, Capacity = plan.PositionsNeeded, MaxBlockSize = plan.BlockSize,
        });
        // the first session of a model makes its backend: weight upload on a device, packed copies on the CPU
        double sessionSeconds = clock.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"nbp-run: session on {session.BackendName} ready in {sessionSeconds:F2} s (KV cache; first session: packed CPU weights or device upload)");
        var generator = session.CreateGenerator(request);
        Console.Error.WriteLine($"nbp-run: {plan.Mode} generation on {session.BackendName}: prompt {plan.PromptLength}, B = {plan.BlockSize}, " +
                                $"{plan.Steps} steps, {plan.TokenCount} tokens, {o.Sampling}, seed {o.Seed}");

        var tokens = new int[plan.TokenCount];
        int written = 0;
        double prefillSeconds = 0;
        clock.Restart();
        while (!generator.IsComplete)
        {
            ct.ThrowIfCancellationRequested();
            written += generator.Step(tokens.AsSpan(written));
            if (generator.StepIndex == 1)
            {
                prefillSeconds = clock.Elapsed.TotalSeconds;
                if (o.LogitsOut is not null) WriteLogits(session, cfg.VocabSize, o.LogitsOut);
            }
            Report.Detail($"nbp-run: step {generator.StepIndex}/{plan.Steps}: {written}/{plan.TokenCount} tokens, {clock.Elapsed.TotalSeconds:F2} s");
        }
        double total = clock.Elapsed.TotalSeconds;
        if (o.TokensOut is not null) TokenFile.Write(o.TokensOut, tokens, plan.BlockSize);
        Console.Error.WriteLine($"nbp-run: {written} tokens in {plan.Steps} steps: prefill {prefillSeconds:F3} s, steps {total - prefillSeconds:F3} s, " +
                                $"total {total:F3} s, {written / total:F1} tokens/s{(o.TokensOut is null ? "" : " -> " + o.TokensOut)}");
        if (videoTokenizer is not null)
        {
            // prompt + generated -> video codes (shift removed, clamped as MODEL.md §3) -> frames
            var all = prompt.Concat(tokens).Select(id => Math.Clamp(id - cfg.VideoIdOffset, 0, cfg.VideoVocabSize - 1)).ToArray();
            int whole = all.Length / (latent * latent) * latent * latent;
            if (whole != all.Length) Console.Error.WriteLine($"nbp-run: {all.Length - whole} trailing tokens do not fill a latent frame and are not decoded");
            var (pixels, frameCount, height, width) = TokenizerCommands.DecodeCodes(videoTokenizer, deviceTokenizer, all[..whole], latent, o.Threads);
            TokenizerCommands.WriteFrames(o.Output!, VideoIO.ToRgbFrames(pixels, frameCount, height, width), height, width, o.Fps, conditioningFrames);
        }
        if (o.StatsJson is not null)
        {
            var stats = new Dictionary<string, object>
            {
                ["backend"] = session.BackendName, ["block_size"] = plan.BlockSize, ["steps"] = plan.Steps, ["tokens"] = written,
                ["threads"] = o.Threads ?? Environment.ProcessorCount, ["load_seconds"] = loadSeconds, ["session_seconds"] = sessionSeconds, ["prefill_seconds"] = prefillSeconds,
                ["step_seconds"] = total - prefillSeconds, ["total_seconds"] = total,
            };
            OutputPath.WriteAtomically(o.StatsJson, stream => JsonSerializer.Serialize(stream, stats));
        }
        return 0;
    }

    private static void WriteLogits(NbpSession session, int vocab, string path)
    {
        var logits = new float[(long)session.LogitRows * vocab];
        session.CopyLogits(logits);
        NpyWriter.WriteFloat32(path, logits, session.LogitRows, vocab);
        Console.Error.WriteLine($"nbp-run: step-0 logits [{session.LogitRows}, {vocab}] -> {path}");
    }
}
