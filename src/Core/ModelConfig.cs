using NbpEngine.Core;

namespace NbpEngine.Core;

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

public sealed class ModelConfigException(string message) : NbpInputException(message);
