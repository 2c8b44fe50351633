namespace NbpEngine.Loader.IO;

/// <summary>An output path that cannot be written: a folder, a missing folder, an input file, no permission.</summary>
public sealed class OutputPathException(string message) : IOException(message);

/// <summary>
/// Outputs are checked before any long work and written so that a crash never leaves a file that looks
/// complete: bytes go to a temporary file beside the destination, which is renamed over it when complete.
/// </summary>
public static class OutputPath
{
    /// <summary>
    /// Throws <see cref="OutputPathException"/> unless <paramref name="destination"/> can be written: not a folder,
    /// its folder exists and takes a new file, and it is none of <paramref name="inputs"/> (symbolic links resolved).
    /// </summary>
    public static void CheckWritable(string destination, params string?[] inputs)
    {
        if (string.IsNullOrWhiteSpace(destination)) throw new OutputPathException("output path is empty");
        if (Directory.Exists(destination)) throw new OutputPathException($"{destination}: is a folder, expected a file path");
        string full = Resolve(destination);
        foreach (var input in inputs)
            if (input is not null && string.Equals(full, Resolve(input), StringComparison.Ordinal))
                throw new OutputPathException($"{destination}: is also an input ({input}); refusing to overwrite it");
        string folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder)) throw new OutputPathException($"{destination}: folder {folder} does not exist");
        string probe = TemporaryBeside(full);
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputPathException($"{destination}: cannot create files in {folder} ({e.Message})");
        }
    }

    /// <summary>Writes through <paramref name="write"/> into a temporary file beside <paramref name="destination"/>, then renames it into place.</summary>
    public static void WriteAtomically(string destination, Action<Stream> write)
    {
        string full = Path.GetFullPath(destination);
        string temporary = TemporaryBeside(full);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    private static string TemporaryBeside(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial");

    /// <summary>The absolute path with every symbolic link on the way resolved (the path itself need not exist).</summary>
    private static string Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            if (File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target) full = target.FullName;
            string? folder = Path.GetDirectoryName(full);
            if (folder is not null && Directory.Exists(folder) && new DirectoryInfo(folder).ResolveLinkTarget(returnFinalTarget: true) is { } dir)
                full = Path.Combine(dir.FullName, Path.GetFileName(full));
        }
        catch (IOException)
        {
            // a broken link: compare the path as written
        }
        return full;
    }
}
