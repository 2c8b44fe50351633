using System.Globalization;
using NbpEngine.Loader.IO;

namespace NbpEngine.Cli.IO;

/// <summary>Token files: whitespace-separated model-vocabulary ids.</summary>
public static class TokenFile
{
    /// <summary>Longest token text accepted (a 32-bit id has at most 10 digits; a sign or zeros may pad it).</summary>
    private const int MaxTokenChars = 16;

    /// <summary>
    /// Reads the ids, streaming: stops with an error at the first bad token, or as soon as the file holds more
    /// than <paramref name="maxTokens"/> (so a huge file is never read whole); <paramref name="limit"/> says why
    /// the limit is what it is.
    /// </summary>
    public static int[] Read(string path, int maxTokens, string limit = "")
    {
        if (!File.Exists(path)) throw new CliInputException($"{path}: token file not found");
        var ids = new List<int>();
        var token = new System.Text.StringBuilder(MaxTokenChars + 1);
        using var reader = new StreamReader(path);
        while (true)
        {
            int c = reader.Read();
            if (c >= 0 && !char.IsWhiteSpace((char)c))
            {
                if (token.Length == MaxTokenChars) throw new CliInputException($"{path}: token {ids.Count} starts '{token}...', longer than any id");
                token.Append((char)c);
                continue;
            }
            if (token.Length > 0)
            {
                if (!int.TryParse(token.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) || id < 0)
                    throw new CliInputException($"{path}: token {ids.Count} is '{token}', expected a non-negative integer id");
                if (ids.Count == maxTokens) throw new CliInputException($"{path}: holds more than {maxTokens} tokens{limit}");
                ids.Add(id);
                token.Clear();
            }
            if (c < 0) break;
        }
        if (ids.Count == 0) throw new CliInputException($"{path}: no tokens in file");
        return [.. ids];
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
