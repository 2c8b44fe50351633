using System.Globalization;
using NbpEngine.Core;
using NbpEngine.Loader.IO;

namespace NbpEngine.Cli.IO;

/// <summary>What the numbers of a token file are.</summary>
public enum TokenKind
{
    /// <summary>FSQ codes (0..63999 for TOKENIZER.md's levels), as <c>nbp-run encode</c> writes them and <c>decode</c> reads them.</summary>
    VideoCodes,
    /// <summary>Model-vocabulary ids; video ids are codes shifted by the file's video offset (B + Vc in hybrid models, MODEL.md §3).</summary>
    ModelIds,
}

/// <summary>
/// Token files: whitespace-separated integers, after an optional first line that says what they are:
/// <c># nbp-tokens: video-codes</c> (written by encode) or <c># nbp-tokens: model-ids, video-offset N</c> (written by
/// generation). With it, encode -> generate -> decode chain without editing files: generation shifts codes into the
/// model's vocabulary and decode shifts ids back. A file without the line is read as the reader's own kind.
/// </summary>
public static class TokenFile
{
    /// <summary>Longest token text accepted (a 32-bit id has at most 10 digits; a sign or zeros may pad it).</summary>
    private const int MaxTokenChars = 16;
    private const string Marker = "# nbp-tokens:";

    /// <summary>A prompt for generation: model-vocabulary ids; video codes (encode's output) are shifted by the model's video offset.</summary>
    public static int[] ReadModelIds(string path, ModelConfig config, int maxTokens, string limit = "")
    {
        var (ids, kind, _) = Read(path, maxTokens, limit);
        if (kind != TokenKind.VideoCodes) return ids;
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] >= config.VideoVocabSize)
                throw new CliInputException($"{path}: video code {i} is {ids[i]}, beyond the model's video vocabulary {config.VideoVocabSize}");
            ids[i] += config.VideoIdOffset;
        }
        return ids;
    }

    /// <summary>
    /// Codes for decode: model ids (generation's output) lose the file's video offset and are clamped to the codebook
    /// (the tokenizer's <paramref name="codebookSize"/> codes) as MODEL.md §3 says; returns how many were clamped. Codes
    /// must lie in the codebook.
    /// </summary>
    public static (int[] Codes, int Clamped) ReadVideoCodes(string path, int maxTokens, int codebookSize, string limit = "")
    {
        var (ids, kind, offset) = Read(path, maxTokens, limit);
        int clamped = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            if (kind == TokenKind.ModelIds)
            {
                int code = ids[i] - offset;
                if (code < 0 || code >= codebookSize) clamped++;
                ids[i] = Math.Clamp(code, 0, codebookSize - 1);
            }
            else if (ids[i] >= codebookSize)
                throw new CliInputException($"{path}: code {i} is {ids[i]}, outside the tokenizer's codebook [0, {codebookSize})");
        }
        return (ids, clamped);
    }

    /// <summary>
    /// Reads the numbers, streaming: stops with an error at the first bad token, or as soon as the file holds more
    /// than <paramref name="maxTokens"/> (so a huge file is never read whole); <paramref name="limit"/> says why
    /// the limit is what it is.
    /// </summary>
    public static (int[] Ids, TokenKind? Kind, int VideoOffset) Read(string path, int maxTokens, string limit = "")
    {
        if (!File.Exists(path)) throw new CliInputException($"{path}: token file not found");
        var ids = new List<int>();
        var token = new System.Text.StringBuilder(MaxTokenChars + 1);
        using var reader = new StreamReader(path);
        var (kind, offset) = reader.Peek() == '#' ? Header(path, reader.ReadLine()!) : ((TokenKind?)null, 0);
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
        return ([.. ids], kind, offset);
    }

    private static (TokenKind?, int) Header(string path, string line)
    {
        string what = line.StartsWith(Marker, StringComparison.Ordinal) ? line[Marker.Length..].Trim() : "";
        if (what == "video-codes") return (TokenKind.VideoCodes, 0);
        const string ids = "model-ids, video-offset ";
        if (what.StartsWith(ids, StringComparison.Ordinal) && int.TryParse(what[ids.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int offset))
            return (TokenKind.ModelIds, offset);
        throw new CliInputException($"{path}: first line '{line}' is not a token-file header ('{Marker} video-codes' or '{Marker} {ids}N')");
    }

    /// <summary>
    /// Writes the header line and the numbers, one line per <paramref name="perLine"/>, under a temporary name renamed when
    /// complete. <paramref name="videoOffset"/>: the model's video id offset, for <see cref="TokenKind.ModelIds"/>.
    /// </summary>
    public static void Write(string path, int[] ids, int perLine, TokenKind kind, int videoOffset = 0) => OutputPath.WriteAtomically(path, stream =>
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        writer.Write(Marker);
        writer.Write(kind == TokenKind.VideoCodes ? " video-codes\n" : $" model-ids, video-offset {videoOffset.ToString(CultureInfo.InvariantCulture)}\n");
        for (int i = 0; i < ids.Length; i++)
        {
            writer.Write(ids[i].ToString(CultureInfo.InvariantCulture));
            writer.Write((i + 1) % perLine == 0 || i == ids.Length - 1 ? '\n' : ' ');
        }
    });
}

/// <summary>Bad input from the command line; reported as one line, exit code 2.</summary>
public sealed class CliInputException(string message) : NbpInputException(message);
