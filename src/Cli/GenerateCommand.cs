using System.CommandLine;
using System.CommandLine.Invocation;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NbpEngine.Cli.IO;
using NbpEngine.Cli.Options;
using NbpEngine.Pipeline;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Loader.TorchCheckpoint;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Runtime.Threading;
using NbpEngine.Tokenizer.Text;
using NbpEngine.Core;

namespace NbpEngine.Cli;

/// <summary>
/// <c>nbp-run</c>: tokens or a video from tokens, words or frames. A thin client of <see cref="NbpPipeline"/>;
/// everything it does a host can do through the same API.
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
            // Ctrl+C / SIGTERM cancel the token and the command stops at the next step boundary, however long the step in
            // flight takes: System.CommandLine's default would kill the process 2 s after the signal (exit 130, no
            // message), which a slow step (a big model on the CPU, a loaded machine) outlasts
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = Timeout.InfiniteTimeSpan });
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
        var o = new GenerateOptions();
        var root = new RootCommand("nbp-run: Next-Block-Prediction video generation (frames or words to video, tokens to tokens)");
        foreach (var (_, options) in o.Groups)
            foreach (var option in options) root.Options.Add(option);
        root.Subcommands.Add(TokenizerCommands.Decode());
        root.Subcommands.Add(TokenizerCommands.Encode());
        root.Subcommands.Add(ConvertCommand.Build());
        root.Subcommands.Add(TextCommands.TextIds());
        root.Subcommands.Add(BatchCommand.Build());
        root.Subcommands.Add(EvalCommand.Build());
        GroupedHelp.Install(root, o.Groups);
        root.SetAction(async (parse, ct) =>
        {
            try
            {
                if (parse.GetValue(o.ClassName) is "list") return TextCommands.ListClasses();
                return await RunAsync(Resolve(parse, o), ct);
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

    /// <summary>The parsed command line as one checked record; every combination rule lives here.</summary>
    private static Options Resolve(ParseResult parse, GenerateOptions o)
    {
        if (parse.GetValue(o.Weights) is null) throw new CliInputException("--weights (-m) is required (a safetensors checkpoint)");
        bool video = parse.GetValue(o.Tokenizer) is not null || parse.GetValue(o.Input) is not null || parse.GetValue(o.Output) is not null;
        bool words = parse.GetValue(o.Text) is not null || parse.GetValue(o.ClassName) is not null;
        if (video && (parse.GetValue(o.Tokenizer) is null || parse.GetValue(o.Input) is null || parse.GetValue(o.Output) is null))
            throw new CliInputException("frame prediction from video needs --tokenizer, --input and --output together");
        if ((words ? 1 : 0) + (parse.GetValue(o.PromptTokens) is null ? 0 : 1) + (video ? 1 : 0) != 1 || (!video && parse.GetValue(o.TokensOut) is null))
            throw new CliInputException("give --tokens-out with one of --prompt-tokens or --prompt/--class (token generation), " +
                                        "or --tokenizer, --input and --output (frame prediction from video)");
        return new Options(
            parse.GetValue(o.Weights)!, parse.GetValue(o.PromptTokens), parse.GetValue(o.TokensOut), parse.GetValue(o.LogitsOut), parse.GetValue(o.StatsJson),
            new ModelConfigOverrides
            {
                HeadCount = parse.GetValue(o.HeadCount), BlockSize = parse.GetValue(o.ModelBlock), VideoVocabSize = parse.GetValue(o.VideoVocab),
                Hybrid = parse.GetValue(o.Hybrid), CondTokenCount = parse.GetValue(o.CondTokens), Resolution = parse.GetValue(o.Resolution),
                SequenceLength = parse.GetValue(o.SequenceLength),
            },
            parse.GetValue(o.Mode) switch { "frame" => GenerationMode.Frame, "hybrid" => GenerationMode.Hybrid, _ => null },
            parse.GetValue(o.BlockSize), parse.GetValue(o.CondLength), parse.GetValue(o.Steps), Sampling(parse, o), parse.GetValue(o.Seed),
            new PipelineOptions
            {
                Backend = SharedOptions.BackendKindOf(parse.GetValue(o.Backend)), Threads = CheckThreads(parse.GetValue(o.Threads)),
                DeviceWeights = parse.GetValue(o.DeviceWeights) switch { "f32" => WeightStorage.F32, "f16" => WeightStorage.F16, "bf16" => WeightStorage.BF16, _ => null },
                TensorCores = SharedOptions.TensorCoresOf(parse, o.TensorCores), CpuWeights = parse.GetValue(o.CpuWeights) == "in-place" ? CpuWeightLayout.InPlace : CpuWeightLayout.Packed,
                CheckFinite = !parse.GetValue(o.SkipFinite), CudaGraphs = CheckCudaGraphs(parse.GetValue(o.CudaGraphs), parse.GetValue(o.Backend)),
            },
            parse.GetValue(o.Tokenizer), parse.GetValue(o.Input), parse.GetValue(o.Output), parse.GetValue(o.Fps),
            parse.GetValue(o.Text), parse.GetValue(o.ClassName), parse.GetValue(o.TextTokenizer), parse.GetValue(o.Padding),
            parse.GetValue(o.CfgScale), parse.GetValue(o.CfgSchedule) == "linear" ? GuidanceSchedule.Linear : GuidanceSchedule.Constant);
    }

    /// <summary>--greedy or --temperature 0: argmax; otherwise the published settings with the given changes, checked before any work.</summary>
    private static SamplingSettings Sampling(ParseResult parse, GenerateOptions o)
    {
        float? temperature = parse.GetValue(o.Temperature);
        bool anySampling = parse.GetValue(o.TopK) is not null || parse.GetValue(o.TopP) is not null || temperature is not null;
        if (parse.GetValue(o.Greedy) && anySampling) throw new CliInputException("--greedy cannot be combined with --top-k, --top-p or --temperature");
        if (parse.GetValue(o.Greedy) || temperature == 0)
        {
            if (temperature == 0 && (parse.GetValue(o.TopK) is not null || parse.GetValue(o.TopP) is not null))
                throw new CliInputException("--temperature 0 is greedy decoding; --top-k and --top-p do not apply");
            return SamplingSettings.GreedyDecoding;
        }
        var settings = new SamplingSettings(false, temperature ?? 1f, parse.GetValue(o.TopK) ?? 16000, parse.GetValue(o.TopP) ?? 0.9f);
        settings.Validate(); // the engine's own rule, here so a bad value stops the run before anything loads
        return settings;
    }

    /// <summary>
    /// The engine's own errors (bad files, hyper-parameters, requests, a backend this machine lacks) and missing or
    /// unwritable paths: exit 2 with the message. Anything else is a bug: exit 1.
    /// </summary>
    internal static bool IsInputError(Exception e) => e is NbpInputException or InvalidDataException or OutputPathException
        or FileNotFoundException or DirectoryNotFoundException;

    private sealed record Options(string Weights, string? PromptTokens, string? TokensOut, string? LogitsOut, string? StatsJson,
        ModelConfigOverrides Overrides, GenerationMode? Mode, int? BlockSize, int? CondLength, int? Steps, SamplingSettings Sampling,
        ulong Seed, PipelineOptions Pipeline, string? Tokenizer, string? Input, string? Output, int Fps,
        string? Text, string? ClassName, string? TextTokenizer, PaddingSide Padding, float CfgScale, GuidanceSchedule CfgSchedule);

    /// <summary>Exit code after an interrupt (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;

    /// <summary>--cuda-graphs with a backend that cannot have them is refused before anything loads (auto may pick CUDA).</summary>
    private static bool CheckCudaGraphs(bool graphs, string? backend) => graphs && backend is not ("cuda" or "auto")
        ? throw new CliInputException($"--cuda-graphs needs --backend cuda (or auto on a machine with a GPU), found --backend {backend}")
        : graphs;

    internal static int? CheckThreads(int? threads) => threads is < 1 or > WorkerPool.MaxThreads
        ? throw new CliInputException($"--threads must be in [1, {WorkerPool.MaxThreads}], found {threads}")
        : threads;

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
        // every input and output checked before anything is loaded: a bad path must not cost a whole generation
        string?[] inputs = [o.Weights, o.Tokenizer, o.PromptTokens, o.Input, o.TextTokenizer];
        OutputChecks.Files(inputs, ("--tokens-out", o.TokensOut), ("--logits-out", o.LogitsOut), ("--stats-json", o.StatsJson));
        if (o.Output is not null) OutputChecks.Frames(o.Output, o.Fps, inputs);
        foreach (var (option, path) in new[] { ("--weights", o.Weights), ("--tokenizer", o.Tokenizer), ("--prompt-tokens", o.PromptTokens), ("--text-tokenizer", o.TextTokenizer) })
            if (path is not null && !File.Exists(path)) throw new CliInputException($"{path}: {option} file not found");
        if (o.Input is not null && !File.Exists(o.Input) && !Directory.Exists(o.Input)) throw new CliInputException($"{o.Input}: --input not found (a PNG folder or a video file)");
        using var loggers = new StderrLoggerFactory(LogLevel.Information);
        var options = o.Pipeline with { Overrides = o.Overrides, LoggerFactory = loggers };
        using var pipeline = await Report.RunAsync(progress => NbpPipeline.LoadAsync(o.Weights, o.Tokenizer, options, progress, ct));
        var cfg = pipeline.Model.Config;
        Console.Error.WriteLine($"nbp-run: {o.Weights}: {cfg.LayerCount} layers, {cfg.HeadCount} heads, C = {cfg.EmbeddingSize}, V = {cfg.VocabSize}, " +
                                $"P = {cfg.PositionCount}, B = {cfg.BlockSize}{(cfg.Hybrid ? ", hybrid" : "")} (loaded in {pipeline.LoadSeconds:F2} s)");
        var request = new GenerationRequest
        {
            Prompt = [], Mode = o.Mode, BlockSize = o.BlockSize, CondLength = o.CondLength, Steps = o.Steps, Sampling = o.Sampling, Seed = o.Seed,
            GuidanceScale = o.CfgScale, GuidanceSchedule = o.CfgSchedule,
        };
        Action<NbpSession>? afterPrefill = o.LogitsOut is null ? null : session => WriteLogits(session, cfg.VocabSize, o.LogitsOut);
        GenerationResult result;
        FramePrediction? prediction = null;
        VideoClip? conditioning = null;
        if (pipeline.Codec is not null)
        {
            // frame prediction: the conditioning frames the model's clips start with (5 of K600's 17), at its resolution
            int frames = Math.Min(5, cfg.SequenceLength);
            var clip = conditioning = VideoClip.Read(o.Input!, cfg.Resolution, frames);
            Report.Detail($"nbp-run: {frames} conditioning frames of {cfg.Resolution}x{cfg.Resolution} from {o.Input}; tokenizer on {pipeline.Codec.BackendName}");
            prediction = Report.Run(progress => pipeline.PredictFrames(clip, request, progress, ct));
            result = prediction.Generation;
            Report.Detail($"nbp-run: encode {prediction.Encode.Seconds:F3} s, decode {prediction.Decode.Seconds:F3} s{CodecDetails(pipeline.Codec, prediction.Encode, prediction.Decode)}");
            if (prediction.UndecodedTokens > 0) Console.Error.WriteLine($"nbp-run: {prediction.UndecodedTokens} trailing tokens do not fill a latent frame and are not decoded");
        }
        else
        {
            int[] prompt;
            if (o.Text is not null || o.ClassName is not null)
            {
                var text = o.TextTokenizer is null ? null : TextPromptTokenizer.Load(o.TextTokenizer);
                (string words, prompt) = TextCommands.HybridPrompt(o.Text, o.ClassName, text, o.Padding, cfg);
                Console.Error.WriteLine($"nbp-run: condition '{words}' -> {string.Join(' ', prompt)}");
            }
            else prompt = TokenFile.ReadModelIds(o.PromptTokens!, cfg, cfg.PositionCount, $" (the model has {cfg.PositionCount} positions)");
            var plan = GenerationPlan.Resolve(request with { Prompt = prompt }, cfg);
            Console.Error.WriteLine($"nbp-run: {plan.Mode} generation: prompt {plan.PromptLength}, B = {plan.BlockSize}, {plan.Steps} steps, {plan.TokenCount} tokens, {o.Sampling}, seed {o.Seed}");
            result = Report.Run(progress => pipeline.Generate(request with { Prompt = prompt }, progress, ct, afterPrefill));
        }
        var t = result.Timings;
        if (o.TokensOut is not null) TokenFile.Write(o.TokensOut, result.Tokens, result.Plan.BlockSize, TokenKind.ModelIds, cfg.VideoIdOffset);
        Console.Error.WriteLine($"nbp-run: {result.Tokens.Length} tokens in {result.Plan.Steps} steps on {result.BackendName}: prefill {t.PrefillSeconds:F3} s, " +
                                $"steps {t.StepSeconds:F3} s, total {t.TotalSeconds:F3} s, {result.Tokens.Length / t.TotalSeconds:F1} tokens/s" +
                                (o.TokensOut is null ? "" : " -> " + o.TokensOut));
        if (prediction is not null)
            TokenizerCommands.WriteFrames(o.Output!, prediction.Video.ToRgbFrames(), prediction.Video.Height, prediction.Video.Width, o.Fps,
                conditioning!.ToRgbFrames());
        if (o.StatsJson is not null)
        {
            var stats = new Dictionary<string, object>
            {
                ["backend"] = result.BackendName, ["block_size"] = result.Plan.BlockSize, ["steps"] = result.Plan.Steps, ["tokens"] = result.Tokens.Length,
                ["threads"] = options.Threads ?? Environment.ProcessorCount, ["load_seconds"] = pipeline.LoadSeconds, ["session_seconds"] = t.SessionSeconds,
                ["prefill_seconds"] = t.PrefillSeconds, ["step_seconds"] = t.StepSeconds, ["total_seconds"] = t.TotalSeconds,
            };
            if (prediction is not null)
            {
                stats["encode_seconds"] = prediction.Encode.Seconds;
                stats["decode_seconds"] = prediction.Decode.Seconds;
            }
            OutputPath.WriteAtomically(o.StatsJson, stream => JsonSerializer.Serialize(stream, stats));
        }
        return 0;
    }

    /// <summary>The CPU tokenizer's one-time preparation, activation peak and conv algorithm, for the timing line.</summary>
    internal static string CodecDetails(VideoCodec codec, params CodecTiming[] timings) => codec.OnDevice ? "" :
        $" (CPU weight preparation {timings.Sum(x => x.PrepareSeconds):F3} s, activations peak {timings.Max(x => x.ActivationPeakBytes) / (1 << 20)} MiB, {codec.CpuDetails})";

    private static void WriteLogits(NbpSession session, int vocab, string path)
    {
        var logits = new float[(long)session.LogitRows * vocab];
        session.CopyLogits(logits);
        NpyWriter.WriteFloat32(path, logits, session.LogitRows, vocab);
        Console.Error.WriteLine($"nbp-run: step-0 logits [{session.LogitRows}, {vocab}] -> {path}");
    }
}
