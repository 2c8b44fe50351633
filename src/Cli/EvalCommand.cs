using System.CommandLine;
using NbpEngine.Cli.IO;
using NbpEngine.Cli.Options;
using NbpEngine.Pipeline;
using NbpEngine.Pipeline.Evaluation;

namespace NbpEngine.Cli;

/// <summary>
/// <c>nbp-run eval --weights W --tokenizer T</c>: frame prediction judged on held-out synthetic clips of the demo data
/// contract (weights/demo/README.md), as a table: the engine greedy and top-k sampled, repeating the last real frame,
/// and the tokenizer's own reconstruction (the ceiling). For the demo models; any frame model whose clips are 17 frames
/// can be run through it, though its numbers then say how it handles moving shapes, nothing more.
/// </summary>
public static class EvalCommand
{
    public static Command Build()
    {
        var weights = new Option<string>("--weights", "-m") { Description = "frame-prediction transformer (safetensors)", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "video tokenizer (safetensors) with encoder and decoder", Required = true };
        var clips = new Option<int>("--clips") { Description = "held-out clips", DefaultValueFactory = _ => 16 };
        var seed = new Option<int>("--seed") { Description = "seed of the held-out clips (training used others)", DefaultValueFactory = _ => 9001 };
        var threads = SharedOptions.Threads();
        var backend = SharedOptions.Backend();
        var command = new Command("eval", "PSNR of frame prediction on held-out synthetic clips, beside copy-last-frame and the tokenizer ceiling")
        {
            weights, tokenizer, clips, seed, threads, backend,
        };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                int count = parse.GetValue(clips);
                if (count < 1 || count > 10000) throw new CliInputException($"--clips must be in [1, 10000], found {count}");
                foreach (var (option, path) in new[] { ("--weights", parse.GetValue(weights)!), ("--tokenizer", parse.GetValue(tokenizer)!) })
                    if (!File.Exists(path)) throw new CliInputException($"{path}: {option} file not found");
                var options = new PipelineOptions
                {
                    Backend = SharedOptions.BackendKindOf(parse.GetValue(backend)), Threads = GenerateCommand.CheckThreads(parse.GetValue(threads)),
                };
                using var pipeline = await NbpPipeline.LoadAsync(parse.GetValue(weights)!, parse.GetValue(tokenizer), options, null, ct);
                if (pipeline.Model.Config.SequenceLength != SyntheticClips.Frames)
                    throw new CliInputException($"{parse.GetValue(weights)}: the model's clips have {pipeline.Model.Config.SequenceLength} frames; the synthetic clips have {SyntheticClips.Frames}");
                var rows = PredictionQuality.Evaluate(pipeline, count, parse.GetValue(seed), 1,
                    new SynchronousProgress<int>(done => Report.Detail($"nbp-run: eval: {done}/{count} clips")), ct);
                Console.WriteLine($"{count} held-out clips (seed {parse.GetValue(seed)}), {pipeline.Model.Config.Resolution}x{pipeline.Model.Config.Resolution}, " +
                                  "PSNR of frames 6-17 predicted from frames 1-5");
                Console.WriteLine();
                Console.WriteLine("| method | mean PSNR dB | worst clip dB |");
                Console.WriteLine("|---|---|---|");
                foreach (var row in rows) Console.WriteLine($"| {row.Method} | {row.MeanPsnr:F2} | {row.MinPsnr:F2} |");
                return 0;
            }
            catch (Exception e) when (GenerateCommand.IsInputError(e))
            {
                Console.Error.WriteLine($"nbp-run: error: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}
