using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NbpEngine.Cli.IO;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Loader.TorchCheckpoint;

namespace NbpEngine.Cli;

/// <summary>
/// <c>nbp-run convert SOURCE DEST.safetensors</c>: a training checkpoint (Lightning .ckpt, DeepSpeed, flat state
/// dict, tokenizer .pt) to safetensors, read by <see cref="CheckpointConverter"/> without Python and without
/// running the checkpoint's pickle.
/// </summary>
public static class ConvertCommand
{
    public static Command Build()
    {
        var source = new Argument<string>("SOURCE") { Description = "PyTorch zip checkpoint: Lightning .ckpt, DeepSpeed / flat state dict, or the tokenizer .pt" };
        var destination = new Argument<string>("DEST") { Description = "safetensors file to write (.safetensors)" };
        var dtype = new Option<string>("--dtype") { Description = "element type of every tensor written: f32 | f16 | bf16", DefaultValueFactory = _ => "f32" };
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16");
        var noTokenizer = new Option<bool>("--no-tokenizer") { Description = "drop first_stage_model.* (the tokenizer inside an NBP training checkpoint)" };
        var overrides = CheckpointConverter.MetadataKeys.Select(key => (Key: key,
            Option: new Option<string?>("--" + key.Replace('_', '-')) { Description = $"set __metadata__ {key} (wins over the checkpoint's)" })).ToList();
        var command = new Command("convert", "training checkpoint -> safetensors, without Python; the checkpoint's pickle is interpreted, never run") { source, destination, dtype, noTokenizer };
        foreach (var (_, option) in overrides) command.Options.Add(option);
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            string from = parse.GetValue(source)!, to = parse.GetValue(destination)!;
            if (!to.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw new CliInputException($"{to}: the destination must end in .safetensors");
            var options = new ConvertOptions
            {
                DType = parse.GetValue(dtype) switch { "f16" => TensorDType.F16, "bf16" => TensorDType.BF16, _ => TensorDType.F32 },
                NoTokenizer = parse.GetValue(noTokenizer),
                Overrides = overrides.Where(o => parse.GetValue(o.Option) is not null).ToDictionary(o => o.Key, o => parse.GetValue(o.Option)!),
            };
            var clock = Stopwatch.StartNew();
            using var loggers = new StderrLoggerFactory(LogLevel.Information);
            var result = CheckpointConverter.Convert(from, to, options, loggers.CreateLogger("convert"));
            Console.Error.WriteLine($"nbp-run: {from} ({result.Layout}) -> {to}: {result.TensorCount} tensors, {result.TensorBytes / 1e6:F1} MB {options.DType.Name()}, " +
                                    $"metadata {{{string.Join(", ", result.Metadata.Select(kv => kv.Key + "=" + kv.Value))}}} in {clock.Elapsed.TotalSeconds:F2} s");
            return 0;
        }));
        return command;
    }
}
