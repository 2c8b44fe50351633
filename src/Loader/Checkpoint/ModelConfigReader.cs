using System.Globalization;
using Microsoft.Extensions.Logging;
using NbpEngine.Core;
using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Loader.Checkpoint;

public static class ModelConfigReader
{
    private const string Prefix = "transformer.";

    /// <summary>
    /// Builds the config from metadata and shapes of <paramref name="file"/>, then applies
    /// <paramref name="overrides"/>. Every disagreement or default is logged.
    /// </summary>
    public static ModelConfig Read(SafetensorsFile file, ModelConfigOverrides? overrides, ILogger logger)
    {
        overrides ??= new ModelConfigOverrides();
        var meta = file.Metadata;
        string path = file.Path;

        var tokEmb = RequireTensor(file, Prefix + "tok_emb.weight", 2);
        var posEmb = RequireTensor(file, Prefix + "pos_emb", 3);
        int vocab = Dimension(tokEmb, 0, path);
        int embd = Dimension(tokEmb, 1, path);
        int positions = Dimension(posEmb, 1, path);
        int layers = 0;
        while (file.TryGetTensor($"{Prefix}blocks.{layers}.ln1.weight", out _)) layers++;
        if (layers == 0) throw new ModelConfigException($"{path}: no transformer blocks found (expected key '{Prefix}blocks.0.ln1.weight')");

        CheckAgrees(meta, "n_layer", layers, path, logger);
        CheckAgrees(meta, "n_embd", embd, path, logger);
        CheckAgrees(meta, "block_size", positions, path, logger);

        int? heads = overrides.HeadCount ?? MetaInt(meta, "n_head", path);
        if (heads is null)
            throw new ModelConfigException($"{path}: n_head is not in __metadata__ and cannot be derived from shapes; pass --n-head");

        int blockSize = overrides.BlockSize ?? MetaInt(meta, "token_number_per_step", path) ?? Default(16, "token_number_per_step", path, logger);
        bool hybrid = overrides.Hybrid ?? MetaBool(meta, "hybrid", path) ?? false;
        int videoVocab = overrides.VideoVocabSize ?? MetaInt(meta, "vocab_size", path) ?? Default(hybrid ? 64000 : vocab, "vocab_size", path, logger);
        if (!hybrid && videoVocab != vocab)
            logger.LogInformation("{Path}: metadata vocab_size {Meta} differs from tok_emb rows {Rows}; the embedding decides V", path, videoVocab, vocab);
        int condTokens = overrides.CondTokenCount ?? MetaInt(meta, "cond_token_num", path) ?? 0;

        var config = new ModelConfig
        {
            LayerCount = layers,
            HeadCount = heads.Value,
            EmbeddingSize = embd,
            VocabSize = vocab,
            PositionCount = positions,
            BlockSize = blockSize,
            VideoVocabSize = videoVocab,
            Hybrid = hybrid,
            CondTokenCount = condTokens,
            Resolution = overrides.Resolution ?? MetaInt(meta, "resolution", path) ?? 128,
            SequenceLength = overrides.SequenceLength ?? MetaInt(meta, "sequence_length", path) ?? 17,
        };
        config.Validate(path);
        return config;
    }

    /// <summary>A dimension the engine indexes with 32-bit integers.</summary>
    private static int Dimension(TensorInfo tensor, int axis, string path) => tensor.Shape[axis] <= int.MaxValue
        ? (int)tensor.Shape[axis]
        : throw new ModelConfigException($"{path}: tensor '{tensor.Name}' has shape {tensor.ShapeText}: dimension {axis} exceeds {int.MaxValue}");

    private static TensorInfo RequireTensor(SafetensorsFile file, string key, int rank)
    {
        if (!file.TryGetTensor(key, out var t))
            throw new WeightShapeException($"{file.Path}: required tensor '{key}' is missing");
        if (t.Shape.Length != rank)
            throw new WeightShapeException($"{file.Path}: tensor '{key}' must have {rank} dimensions, found shape {t.ShapeText}");
        return t;
    }

    private static void CheckAgrees(IReadOnlyDictionary<string, string> meta, string name, int fromShapes, string path, ILogger logger)
    {
        int? m = MetaInt(meta, name, path);
        if (m is not null && m != fromShapes)
            logger.LogWarning("{Path}: metadata {Name} = {Meta} disagrees with the tensor shapes ({Shapes}); using the shapes", path, name, m, fromShapes);
    }

    private static int Default(int value, string name, string path, ILogger logger)
    {
        logger.LogInformation("{Path}: {Name} not in __metadata__, using {Value}", path, name, value);
        return value;
    }

    public static int? MetaInt(IReadOnlyDictionary<string, string> meta, string name, string path)
    {
        if (!meta.TryGetValue(name, out var text) || text.Length == 0 || text == "None") return null;
        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)) return v;
        throw new ModelConfigException($"{path}: __metadata__ '{name}' must be an integer, found '{text}'");
    }

    public static bool? MetaBool(IReadOnlyDictionary<string, string> meta, string name, string path)
    {
        if (!meta.TryGetValue(name, out var text) || text.Length == 0 || text == "None") return null;
        return text.ToLowerInvariant() switch
        {
            "true" or "1" => true,
            "false" or "0" => false,
            _ => throw new ModelConfigException($"{path}: __metadata__ '{name}' must be true or false, found '{text}'"),
        };
    }
}
