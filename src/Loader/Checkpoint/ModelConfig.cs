using System.Globalization;
using Microsoft.Extensions.Logging;
using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Loader.Checkpoint;

/// <summary>
/// Hyper-parameters of an NBP transformer (MODEL.md §1-3). Built from a checkpoint's
/// <c>__metadata__</c> and tensor shapes; shapes win over metadata for derivable values.
/// </summary>
public sealed record ModelConfig
{
    public required int LayerCount { get; init; }          // n_layer
    public required int HeadCount { get; init; }           // n_head
    public required int EmbeddingSize { get; init; }       // n_embd, C
    public required int VocabSize { get; init; }           // rows of tok_emb, V
    public required int PositionCount { get; init; }       // block_size, P
    public required int BlockSize { get; init; }           // token_number_per_step, B
    public int VideoVocabSize { get; init; } = 64000;      // metadata vocab_size
    public bool Hybrid { get; init; }
    public int CondTokenCount { get; init; }               // cond_token_num
    public int Resolution { get; init; } = 128;
    public int SequenceLength { get; init; } = 17;         // frames per video

    public int HeadSize => EmbeddingSize / HeadCount;

    /// <summary>Number of condition ids Vc in the hybrid id layout: V - videoVocab - B.</summary>
    public int ConditionVocabSize => Hybrid ? VocabSize - VideoVocabSize - BlockSize : 0;

    /// <summary>First model id of a video code: B + Vc in hybrid models, 0 otherwise.</summary>
    public int VideoIdOffset => Hybrid ? BlockSize + ConditionVocabSize : 0;

    /// <summary>Video tokens of one clip: latent frames x (resolution/8)^2 (1280 for 17 frames at 128x128).</summary>
    public int VideoTokenCount => (1 + (SequenceLength - 1) / 4) * (Resolution / 8) * (Resolution / 8);

    /// <summary>Largest frame side the engine accepts (resolution metadata, --size): 1024 x 1024 frames, 16,384 tokens per latent frame.</summary>
    public const int MaxResolution = 1024;
    /// <summary>Most frames per clip (1 + 4k): 1025 latent frames.</summary>
    public const int MaxSequenceLength = 4097;
    /// <summary>Frame side / latent side of the tokenizer (TOKENIZER.md).</summary>
    public const int SpatialFactor = 8;

    /// <summary>A frame side the engine takes: a positive multiple of <see cref="SpatialFactor"/> up to <see cref="MaxResolution"/>.</summary>
    public static bool IsValidResolution(int side) => side > 0 && side <= MaxResolution && side % SpatialFactor == 0;

    public void Validate(string source)
    {
        void Require(bool ok, string what)
        {
            if (!ok) throw new ModelConfigException($"{source}: {what}");
        }
        Require(LayerCount > 0, $"n_layer must be positive, found {LayerCount}");
        Require(HeadCount > 0, $"n_head must be positive, found {HeadCount}");
        Require(EmbeddingSize > 0 && EmbeddingSize % HeadCount == 0, $"n_embd ({EmbeddingSize}) must be a positive multiple of n_head ({HeadCount})");
        Require(VocabSize > 0, $"vocabulary size must be positive, found {VocabSize}");
        Require(PositionCount > 0, $"block_size (positions) must be positive, found {PositionCount}");
        Require(BlockSize > 0, $"token_number_per_step must be positive, found {BlockSize}");
        Require(VideoVocabSize > 0, $"vocab_size (video vocabulary) must be positive, found {VideoVocabSize}");
        Require(BlockSize <= PositionCount, $"token_number_per_step ({BlockSize}) exceeds block_size, the learned positions ({PositionCount})");
        Require(CondTokenCount >= 0 && CondTokenCount < PositionCount, $"cond_token_num must be in [0, {PositionCount}), found {CondTokenCount}");
        Require(IsValidResolution(Resolution),
            $"resolution must be a positive multiple of {SpatialFactor} up to {MaxResolution}, found {Resolution}");
        Require(SequenceLength > 0 && SequenceLength <= MaxSequenceLength && (SequenceLength - 1) % 4 == 0,
            $"sequence_length must be 1 + 4k frames, at most {MaxSequenceLength}, found {SequenceLength}");
        if (Hybrid)
            Require(ConditionVocabSize >= 0,
                $"hybrid layout needs V >= vocab_size + B, found V = {VocabSize}, vocab_size = {VideoVocabSize}, B = {BlockSize}");
    }
}

/// <summary>Values given on the command line or by a host that replace the checkpoint's.</summary>
public sealed record ModelConfigOverrides
{
    public int? HeadCount { get; init; }
    public int? BlockSize { get; init; }
    public int? VideoVocabSize { get; init; }
    public bool? Hybrid { get; init; }
    public int? CondTokenCount { get; init; }
    public int? Resolution { get; init; }
    public int? SequenceLength { get; init; }
}

public sealed class ModelConfigException(string message) : Exception(message);

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
