using NbpEngine.Cli.IO;
using NbpEngine.Loader.Pickle;
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
    public static readonly IReadOnlyList<string> Names = ["safetensors", "tokens", "png", "checkpoint", "pickle"];

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
                    // chunk CRCs recomputed first (into a scratch copy), or nearly every mutation would stop at the CRC check
                    string fixedPng = Path.Combine(scratch, "fixed.png");
                    File.WriteAllBytes(fixedPng, PngWithFixedCrcs(File.ReadAllBytes(input)));
                    Png.ReadRgb(fixedPng);
                    break;
                case "pickle":
                    // the interpreter alone (inside a checkpoint, zip CRCs would stop nearly every mutation before it)
                    new PickleMachine(new CheckpointAllowList((key, dtype, count) => count <= 1 << 20
                        ? new TorchStorage(key, dtype, count, new ZipEntry("archive/data/" + key, 0, count * dtype.SizeInBytes(), 0))
                        : throw new InvalidDataException($"storage of {count} elements"))).Load(File.ReadAllBytes(input));
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
        "pickle" => e is PickleException,
        _ => false,
    };

    /// <summary>The same bytes with every complete chunk's CRC-32 recomputed (a fuzzing aid; the reader itself checks them).</summary>
    public static byte[] PngWithFixedCrcs(byte[] bytes)
    {
        for (long at = 8; at + 12 <= bytes.Length;)
        {
            long length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)at));
            if (at + 12 + length > bytes.Length) break;
            var crc = new System.IO.Hashing.Crc32();
            crc.Append(bytes.AsSpan((int)at + 4, (int)length + 4));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan((int)(at + 8 + length)), crc.GetCurrentHashAsUInt32());
            at += 12 + length;
        }
        return bytes;
    }

    /// <summary>Small valid inputs for each target, to start AFL++ from.</summary>
    public static void WriteSeeds(string folder, string fixtures)
    {
        foreach (var name in Names) Directory.CreateDirectory(Path.Combine(folder, name));
        File.Copy(Path.Combine(fixtures, "checkpoints", "dtypes_f16.expected.safetensors"), Path.Combine(folder, "safetensors", "dtypes.safetensors"), true);
        File.Copy(Path.Combine(fixtures, "checkpoints", "dtypes.pt"), Path.Combine(folder, "checkpoint", "dtypes.pt"), true);
        using (var zip = StoredZipArchive.Open(Path.Combine(fixtures, "checkpoints", "dtypes.pt")))
            File.WriteAllBytes(Path.Combine(folder, "pickle", "dtypes.pkl"), zip.Read(zip.Entries["dtypes/data.pkl"]).ToArray());
        using (var zip = StoredZipArchive.Open(Path.Combine(fixtures, "checkpoints", "lightning_frame.ckpt")))
            File.WriteAllBytes(Path.Combine(folder, "pickle", "lightning.pkl"), zip.Read(zip.Entries.Values.Single(e => e.Name.EndsWith("/data.pkl"))).ToArray());
        File.Copy(Path.Combine(fixtures, "hybrid_prompt.txt"), Path.Combine(folder, "tokens", "prompt.txt"), true);
        File.WriteAllText(Path.Combine(folder, "tokens", "blocks.txt"), "1 2 3 4\n5 6 7 8\n");
        foreach (var malicious in Directory.GetFiles(Path.Combine(fixtures, "malicious"), "*.ckpt"))
        {
            try
            {
                using var zip = StoredZipArchive.Open(malicious);
                var pickle = zip.Entries.Values.FirstOrDefault(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Length < 4096);
                if (pickle is not null) File.WriteAllBytes(Path.Combine(folder, "pickle", Path.GetFileNameWithoutExtension(malicious) + ".pkl"), zip.Read(pickle).ToArray());
            }
            catch (CheckpointFormatException)
            {
                // the broken archives of the corpus have no pickle to offer
            }
        }
        var rgb = Enumerable.Range(0, 6 * 4 * 3).Select(i => (byte)(i * 11)).ToArray();
        Png.WriteRgb(Path.Combine(folder, "png", "small.png"), rgb, 6, 4);
    }
}
