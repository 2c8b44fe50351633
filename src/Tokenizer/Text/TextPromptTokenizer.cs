using Microsoft.ML.Tokenizers;
using NbpEngine.Core;

namespace NbpEngine.Tokenizer.Text;

/// <summary>
/// Text to condition ids for the UCF (hybrid) model, MODEL.md §3: the LLaMA SentencePiece tokenizer
/// (a <c>tokenizer.model</c> file, read by Microsoft.ML.Tokenizers), BOS + pieces, truncated to the condition
/// length, padded with EOS. The ids are LLaMA's; <see cref="ModelIds"/> shifts them into the model vocabulary.
/// </summary>
public sealed class TextPromptTokenizer
{
    private readonly LlamaTokenizer _tokenizer;

    public string Path { get; }
    public int BeginId => _tokenizer.BeginningOfSentenceId;
    public int EndId => _tokenizer.EndOfSentenceId;
    /// <summary>Pieces in the model file: every id it produces is below this.</summary>
    public int VocabSize { get; }

    private TextPromptTokenizer(string path, LlamaTokenizer tokenizer)
    {
        Path = path;
        _tokenizer = tokenizer;
        VocabSize = tokenizer.Vocabulary.Count;
    }

    /// <summary>Reads a SentencePiece BPE model (LLaMA's <c>tokenizer.model</c>); a missing or unreadable file is an <see cref="InvalidDataException"/> naming it.</summary>
    public static TextPromptTokenizer Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: text tokenizer model not found", path);
        try
        {
            using var stream = File.OpenRead(path);
            return new TextPromptTokenizer(path, LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or NotSupportedException
                                      or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new InvalidDataException($"{path}: not a SentencePiece BPE model ({e.Message})");
        }
    }

    /// <summary>The pieces of <paramref name="text"/>, no BOS/EOS: what sentencepiece's encode gives.</summary>
    public IReadOnlyList<int> Pieces(string text) => text.Length == 0 ? [] : _tokenizer.EncodeToIds(text);

    /// <summary>BOS + pieces, truncated to <paramref name="length"/> (the end is cut) or padded with EOS to it.</summary>
    public int[] ConditionIds(string text, int length, PaddingSide padding = PaddingSide.Right)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "condition length must be >= 1");
        var ids = new List<int>(length) { BeginId };
        ids.AddRange(Pieces(text).Take(length - 1));
        int pad = length - ids.Count;
        if (pad > 0)
        {
            var eos = Enumerable.Repeat(EndId, pad);
            ids = padding == PaddingSide.Right ? [.. ids, .. eos] : [.. eos, .. ids];
        }
        return [.. ids];
    }

    /// <summary>
    /// The whole prompt of a hybrid (UCF) model for <paramref name="words"/>: its cond_token_num condition ids, shifted into
    /// the model vocabulary, then bov (0); what <c>GenerationRequest.Prompt</c> takes. A checkpoint that is not hybrid or
    /// takes no condition is an <see cref="NbpInputException"/>.
    /// </summary>
    public int[] HybridPrompt(string words, ModelConfig config, PaddingSide padding = PaddingSide.Right)
    {
        if (!config.Hybrid) throw new NbpInputException("a text or class condition is for the hybrid (UCF) model; this checkpoint is not hybrid");
        if (config.CondTokenCount < 1) throw new NbpInputException($"the model's cond_token_num is {config.CondTokenCount}: it takes no text condition");
        return [.. ModelIds(ConditionIds(words, config.CondTokenCount, padding), config.BlockSize, config.ConditionVocabSize), 0];
    }

    /// <summary>
    /// <see cref="HybridPrompt"/> for a UCF-101 class name (as UCF-101 spells it, "ApplyEyeMakeup"; an unknown name gets
    /// the closest ones in the error), through its words ("apply eye makeup").
    /// </summary>
    public int[] ClassPrompt(string className, ModelConfig config, PaddingSide padding = PaddingSide.Right)
        => HybridPrompt(UcfClasses.Prompt(UcfClasses.Find(className)), config, padding);

    /// <summary>LLaMA ids shifted into the hybrid model's vocabulary (condition id + B, MODEL.md §3), checked against its condition vocabulary.</summary>
    public static int[] ModelIds(IReadOnlyList<int> llamaIds, int blockSize, int conditionVocabSize)
    {
        foreach (int id in llamaIds)
            if ((uint)id >= (uint)conditionVocabSize)
                throw new InvalidDataException($"text id {id} is outside the model's condition vocabulary [0, {conditionVocabSize}): the text tokenizer does not match the checkpoint");
        return llamaIds.Select(id => id + blockSize).ToArray();
    }
}
