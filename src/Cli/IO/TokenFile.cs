using System.Globalization;
using NbpEngine.Loader.IO;

namespace NbpEngine.Cli.IO;

/// <summary>Token files: whitespace-separated model-vocabulary ids.</summary>
public static class TokenFile
{
    public static int[] Read(string path)
    {
        if (!File.Exists(path)) throw new CliInputException($"{path}: token file not found");
        var text = File.ReadAllText(path);
        var parts = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]) || ids[i] < 0)
                throw new CliInputException($"{path}: token {i} is '{parts[i]}', expected a non-negative integer id");
        if (ids.Length == 0) throw new CliInputException($"{path}: no tokens in file");
        return ids;
    }

    /// <summary>Writes ids, one line per block of <paramref name="perLine"/>, under a temporary name renamed when complete.</summary>
    public static void Write(string path, int[] ids, int perLine) => OutputPath.WriteAtomically(path, stream =>
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        for (int i = 0; i < ids.Length; i++)
        {
            writer.Write(ids[i].ToString(CultureInfo.InvariantCulture));
            writer.Write((i + 1) % perLine == 0 || i == ids.Length - 1 ? '\n' : ' ');
        }
    });
}

/// <summary>Bad input from the command line; reported as one line, exit code 2.</summary>
public sealed class CliInputException(string message) : Exception(message);
