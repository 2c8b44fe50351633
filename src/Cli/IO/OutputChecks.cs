using NbpEngine.Loader.IO;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Cli.IO;

/// <summary>
/// Every output of a command checked before any work starts: files writable and none of the inputs, a frames
/// output a known video extension or a new (or empty) folder, no two outputs the same path, fps >= 1.
/// </summary>
internal static class OutputChecks
{
    /// <summary>Checks file outputs (option name, path; null = not asked for) against each other and the inputs.</summary>
    public static void Files(string?[] inputs, params (string Option, string? Path)[] outputs)
    {
        var given = outputs.Where(o => o.Path is not null).ToList();
        foreach (var (option, path) in given) OutputPath.CheckWritable(path!, inputs);
        var clash = given.GroupBy(o => Path.GetFullPath(o.Path!)).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null) throw new CliInputException($"{string.Join(" and ", clash.Select(o => o.Option))} name the same file {clash.Key}");
    }

    /// <summary>
    /// A frames output: a .mp4/.gif/.apng file (its PNG frames go to FILE.frames/) or a folder; any other extension
    /// is refused rather than taken for a folder name.
    /// </summary>
    public static void Frames(string output, int fps, string?[] inputs)
    {
        if (fps < 1) throw new CliInputException($"--fps must be >= 1, found {fps}");
        string ext = Path.GetExtension(output).ToLowerInvariant();
        if (VideoIO.VideoExtensions.Contains(ext))
        {
            OutputPath.CheckWritable(output, inputs);
            OutputPath.CheckFolderWritable(FramesFolder(output), inputs);
        }
        else if (ext.Length > 0)
            throw new CliInputException($"{output}: unknown output type '{ext}': give a .mp4, .gif or .apng file, or a folder (no extension) for PNG frames");
        else OutputPath.CheckFolderWritable(output, inputs);
    }

    /// <summary>Where the PNG frames of <paramref name="output"/> go.</summary>
    public static string FramesFolder(string output) =>
        VideoIO.VideoExtensions.Contains(Path.GetExtension(output).ToLowerInvariant()) ? output + ".frames" : output;
}
