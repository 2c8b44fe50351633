using NbpEngine.Cli.IO;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Loader.TorchCheckpoint;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Fuzz;

/// <summary>
/// The readers that take files from users, each with the one exception type that means "refused, with a
/// clear message". Anything else escaping a target is a bug: AFL++ records it as a crash, and the suite
/// (FuzzCorpusTests) replays the kept corpus and every crash input through the same targets.
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyList<string> Names = ["safetensors", "tokens", "png", "checkpoint"];

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/> (a file); returns false when the input was refused as expected.</summary>
    public static bool Run(string target, string input, string scratch)
    {
        try
        {
            switch (target)
            {
                case "safetensors":
                    using (var file = SafetensorsFile.Open(input))
                        foreach (var t in file.Tensors) file.ReadAsFloat32(t, new float[t.ElementCount]);
                    break;
                case "tokens":
                    TokenFile.Read(input, 4096);
                    break;
                case "png":
                    Png.ReadRgb(input);
                    break;
                case "checkpoint":
                    CheckpointConverter.Convert(input, Path.Combine(scratch, "out.safetensors"), new ConvertOptions());
                    break;
                default:
                    throw new ArgumentException($"unknown fuzz target '{target}' (known: {string.Join(", ", Names)})");
            }
            return true;
        }
        catch (Exception e) when (Expected(target, e))
        {
            return false;
        }
    }

    private static bool Expected(string target, Exception e) => target switch
    {
        "safetensors" => e is SafetensorsFormatException,
        "tokens" => e is CliInputException,
        "png" => e is InvalidDataException,
        "checkpoint" => e is CheckpointFormatException,
        _ => false,
    };

    /// <summary>Small valid inputs for each target, to start AFL++ from.</summary>
    public static void WriteSeeds(string folder, string fixtures)
    {
        foreach (var name in Names) Directory.CreateDirectory(Path.Combine(folder, name));
        File.Copy(Path.Combine(fixtures, "checkpoints", "dtypes_f16.expected.safetensors"), Path.Combine(folder, "safetensors", "dtypes.safetensors"), true);
        File.Copy(Path.Combine(fixtures, "checkpoints", "dtypes.pt"), Path.Combine(folder, "checkpoint", "dtypes.pt"), true);
        File.Copy(Path.Combine(fixtures, "hybrid_prompt.txt"), Path.Combine(folder, "tokens", "prompt.txt"), true);
        File.WriteAllText(Path.Combine(folder, "tokens", "blocks.txt"), "1 2 3 4\n5 6 7 8\n");
        var rgb = Enumerable.Range(0, 6 * 4 * 3).Select(i => (byte)(i * 11)).ToArray();
        Png.WriteRgb(Path.Combine(folder, "png", "small.png"), rgb, 6, 4);
    }
}
