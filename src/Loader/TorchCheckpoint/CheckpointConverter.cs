using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Pickle;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Core;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>What <see cref="CheckpointConverter.Convert"/> writes besides the tensors.</summary>
public sealed record ConvertOptions
{
    /// <summary>Element type of every output tensor (F32 default, as the reference converter).</summary>
    public TensorDType DType { get; init; } = TensorDType.F32;
    /// <summary>Drop <c>first_stage_model.*</c> (the video tokenizer inside an NBP training checkpoint).</summary>
    public bool NoTokenizer { get; init; }
    /// <summary>Metadata values set by the user (keys from <see cref="CheckpointConverter.MetadataKeys"/>); they win over the checkpoint's.</summary>
    public IReadOnlyDictionary<string, string> Overrides { get; init; } = new Dictionary<string, string>();
}

/// <summary>What was written: tensor count, bytes, the metadata, and which checkpoint layout the source had.</summary>
public sealed record ConversionResult(int TensorCount, long TensorBytes, IReadOnlyDictionary<string, string> Metadata, string Layout);

/// <summary>
/// Training checkpoint (PyTorch zip: Lightning, DeepSpeed, a flat state dict, or the tokenizer's .pt) to
/// safetensors, without Python and without running the checkpoint. Writes what the reference converter
/// (tools/reference/convert_checkpoint.py) writes, byte for byte: tensors in state-dict order with
/// <c>module.</c> stripped, training hyper-parameters as strings in <c>__metadata__</c> (MODEL.md §2).
/// Everything is read and checked before the destination is created (CRCs of the storages included); the
/// file is written under a temporary name beside the destination and renamed when complete.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>
    /// The hyper-parameters copied into <c>__metadata__</c> (MODEL.md §2), in the order overrides are applied; last, a
    /// tokenizer's FSQ levels (<see cref="FsqLevels.MetadataKey"/>), in practice set by the override only: the tokenizer .pt
    /// keeps its config as pickled bytes, which are never unpickled here.
    /// </summary>
    public static readonly IReadOnlyList<string> MetadataKeys =
    [
        "n_layer", "n_head", "n_embd", "vocab_size", "block_size", "token_number_per_step", "semi_ar", "hybrid",
        "starts_with_bov", "unconditional", "cond_stage_key", "class_cond_dim", "cond_token_num", "resolution", "sequence_length",
        FsqLevels.MetadataKey,
    ];

    private const string TokenizerVersionKey = "tokenizer_version";
    /// <summary>The reference converter's depth limit when it collects hyper-parameters from nested dicts and Namespaces.</summary>
    private const int HyperParameterDepth = 6;
    /// <summary>Output may be at most this many times the source (f32 from bf16 doubles it; more means views repeat storages).</summary>
    public const int MaxExpansion = 4;

    public static ConversionResult Convert(string source, string destination, ConvertOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        foreach (var key in options.Overrides.Keys)
            if (!MetadataKeys.Contains(key)) throw new NbpInputException($"unknown metadata key '{key}' (known: {string.Join(", ", MetadataKeys)})");
        if (options.Overrides.TryGetValue(FsqLevels.MetadataKey, out var levels))
            FsqLevels.Parse(levels, $"--{FsqLevels.MetadataKey.Replace('_', '-')}"); // refused before anything is read or written
        OutputPath.CheckWritable(destination, source);
        using var checkpoint = TorchCheckpointFile.Open(source);
        var (layout, state, hyper) = Layout(checkpoint);
        var tensors = Tensors(checkpoint.Path, state, options.NoTokenizer, logger);
        var metadata = Metadata(hyper, options.Overrides);
        if (tensors.Any(t => t.Name == "transformer.tok_emb.weight") && !metadata.ContainsKey("n_head"))
            logger.LogWarning("n_head not found in the checkpoint; pass --n-head (it cannot be derived from shapes)");

        // a 0-d tensor is written with shape [1], as the reference converter's np.ascontiguousarray makes it
        var entries = tensors.Select(t => new SafetensorsEntry(t.Name, options.DType, t.Tensor.Shape.Length == 0 ? [1] : t.Tensor.Shape,
            TensorConversion.OutputBytes(t.Tensor, options.DType))).ToList();
        long total = entries.Sum(e => e.Bytes), limit = MaxExpansion * new FileInfo(source).Length + (1 << 20);
        if (total > limit)
            throw new CheckpointFormatException(source, $"its tensors would take {total} bytes, more than {MaxExpansion}x the file ({limit} bytes): views repeat their storages; refused");
        // every storage's CRC before the destination exists, so a corrupt file leaves nothing behind
        var storages = tensors.Select(t => t.Tensor.Storage).Distinct().ToList();
        unsafe
        {
            foreach (var storage in storages) checkpoint.StorageBytes(storage);
        }
        OutputPath.WriteAtomically(destination, stream =>
        {
            stream.Write(SafetensorsWriter.Header(entries, metadata));
            unsafe
            {
                foreach (var (_, tensor) in tensors)
                    TensorConversion.Write(stream, checkpoint.StorageBytes(tensor.Storage), tensor, options.DType, checkpoint.BigEndian);
            }
        });
        return new ConversionResult(tensors.Count, total, metadata, layout);
    }

    /// <summary>Where the state dict and the hyper-parameters are, in the reference converter's order of checks.</summary>
    private static (string Layout, PyDict State, List<(string Key, object? Value)> Hyper) Layout(TorchCheckpointFile checkpoint)
    {
        var hyper = new List<(string, object?)>();
        if (checkpoint.Root is not PyDict root)
            throw new CheckpointFormatException(checkpoint.Path, $"the checkpoint holds a {PyRepr.TypeName(checkpoint.Root)}, not a dict of tensors");
        if (root.TryGetValue("state_dict", out var lightning))
        {
            root.TryGetValue("hyper_parameters", out var hp);
            CollectHyperParameters(hp ?? new PyDict(), hyper, 0);
            return ("Lightning", StateDict(checkpoint, lightning, "state_dict"), hyper);
        }
        if (root.TryGetValue("model_state_dict", out var tokenizer))
        {
            root.TryGetValue("version", out var version);
            hyper.Add((TokenizerVersionKey, version));
            return ("tokenizer .pt", StateDict(checkpoint, tokenizer, "model_state_dict"), hyper);
        }
        if (root.TryGetValue("module", out var module) && module is PyDict deepSpeed) return ("DeepSpeed", deepSpeed, hyper);
        return ("flat state dict", root, hyper);
    }

    private static PyDict StateDict(TorchCheckpointFile checkpoint, object? value, string key) =>
        value as PyDict ?? throw new CheckpointFormatException(checkpoint.Path, $"'{key}' holds a {PyRepr.TypeName(value)}, not a dict");

    /// <summary>
    /// Scalars (None, bool, int, float, str) from nested dicts and Namespaces, first occurrence of a name winning,
    /// to depth <see cref="HyperParameterDepth"/>: the reference converter's flatten().
    /// </summary>
    private static void CollectHyperParameters(object? value, List<(string Key, object? Value)> found, int depth)
    {
        if (depth > HyperParameterDepth) return;
        var entries = value switch
        {
            PyDict dict => dict.Entries,
            PyObject obj => obj.Attributes.Entries,
            _ => null,
        };
        foreach (var (key, item) in entries ?? [])
        {
            if (item is null or bool or long or double or string)
            {
                // only string keys can match a metadata name; Python's str() of any other key never does
                if (key is string name && found.All(f => f.Key != name)) found.Add((name, item));
            }
            else CollectHyperParameters(item, found, depth + 1);
        }
    }

    private static Dictionary<string, string> Metadata(List<(string Key, object? Value)> hyper, IReadOnlyDictionary<string, string> overrides)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in hyper)
        {
            if (value is null || !(MetadataKeys.Contains(key) || key == TokenizerVersionKey)) continue;
            // a value other than a scalar (only the tokenizer's version can be one) is written as Python's str() would only for scalars
            metadata[key] = PyRepr.Str(value) ?? throw new InvalidDataException($"hyper-parameter '{key}' is a {PyRepr.TypeName(value)}, not a scalar");
        }
        foreach (var key in MetadataKeys)
            if (overrides.TryGetValue(key, out var value)) metadata[key] = value;
        return metadata;
    }

    /// <summary>The state dict's tensors, in order, named without 'module.'; other values are skipped (optimizer state never sits here).</summary>
    private static List<(string Name, TorchTensor Tensor)> Tensors(string path, PyDict state, bool noTokenizer, ILogger logger)
    {
        var tensors = new List<(string Name, TorchTensor Tensor)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int skipped = 0;
        foreach (var (key, value) in state.Entries)
        {
            if (value is not TorchTensor tensor)
            {
                skipped++;
                continue;
            }
            if (key is not string text) throw new CheckpointFormatException(path, $"state dict key {PyRepr.Of(key)} is a {PyRepr.TypeName(key)}, not a string");
            string name = text.StartsWith("module.", StringComparison.Ordinal) ? text["module.".Length..] : text;
            if (noTokenizer && name.StartsWith("first_stage_model.", StringComparison.Ordinal)) continue;
            if (!names.Add(name)) throw new CheckpointFormatException(path, $"key {name} appears twice (with and without 'module.')");
            tensors.Add((name, tensor));
        }
        if (state.Entries.All(e => e.Value is not TorchTensor)) throw new CheckpointFormatException(path, "no tensors found in its state dict");
        if (skipped > 0) logger.LogInformation("{Path}: {Count} state-dict values that are not tensors were skipped", path, skipped);
        return tensors;
    }
}
