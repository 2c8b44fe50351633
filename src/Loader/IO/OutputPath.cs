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

    /// <summary>
    /// Throws <see cref="OutputPathException"/> unless <paramref name="folder"/> can be made: not a file, empty if it
    /// exists (a folder of earlier results is never mixed with new ones), its parent exists and takes new entries,
    /// and it is none of <paramref name="inputs"/>.
    /// </summary>
    public static void CheckFolderWritable(string folder, params string?[] inputs)
    {
        if (File.Exists(folder)) throw new OutputPathException($"{folder}: is a file, expected a folder for the frames");
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new OutputPathException($"{folder}: folder exists and is not empty; choose a new folder or empty it");
        CheckWritable(folder, inputs);
    }

    /// <summary>Writes through <paramref name="write"/> into a temporary file beside <paramref name="destination"/>, then renames it into place.</summary>
    public static void WriteAtomically(string destination, Action<Stream> write) => WriteAtomically(destination, (string temporary) =>
    {
        using var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        write(stream);
        stream.Flush(flushToDisk: true);
    });

    /// <summary>
    /// Has <paramref name="writeTo"/> write a file at the temporary path it is given (beside <paramref name="destination"/>,
    /// with the same extension, for tools that go by it), then renames that into place.
    /// </summary>
    public static void WriteAtomically(string destination, Action<string> writeTo)
    {
        string full = Path.GetFullPath(destination);
        string temporary = TemporaryBeside(full);
        try
        {
            writeTo(temporary);
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>Fills a temporary folder beside <paramref name="folder"/> through <paramref name="fill"/>, then renames it into place (an empty folder there is replaced).</summary>
    public static void WriteFolderAtomically(string folder, Action<string> fill)
    {
        string full = Path.GetFullPath(folder);
        string temporary = TemporaryBeside(full);
        Directory.CreateDirectory(temporary);
        try
        {
            fill(temporary);
            if (Directory.Exists(full))
            {
                if (Directory.EnumerateFileSystemEntries(full).Any()) throw new OutputPathException($"{folder}: folder was filled by someone else meanwhile; results left in {temporary}");
                Directory.Delete(full);
            }
            Directory.Move(temporary, full);
        }
        catch (Exception e) when (e is not OutputPathException)
        {
            Directory.Delete(temporary, recursive: true);
            throw;
        }
    }

    private static string TemporaryBeside(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial{Path.GetExtension(full)}");

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
