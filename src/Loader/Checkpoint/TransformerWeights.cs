using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Core;

namespace NbpEngine.Loader.Checkpoint;

/// <summary>A required tensor is missing or has the wrong shape; the message names key, expected and found.</summary>
public sealed class WeightShapeException(string message) : NbpInputException(message);

/// <summary>A weight holds NaN or an infinity: the message names the tensor, the element and its index.</summary>
public sealed class WeightValueException(string message) : NbpInputException(message);

/// <summary>Pointers to one transformer block's float32 weights. Shapes as in MODEL.md §2.</summary>
public readonly unsafe struct LayerWeights
{
    public float* Ln1Weight { get; init; }  // [C]
    public float* Ln1Bias { get; init; }    // [C]
    public float* QueryWeight { get; init; } // [C, C] (out, in)
    public float* QueryBias { get; init; }  // [C]
    public float* KeyWeight { get; init; }  // [C, C]
    public float* KeyBias { get; init; }    // [C]
    public float* ValueWeight { get; init; } // [C, C]
    public float* ValueBias { get; init; }  // [C]
    public float* ProjWeight { get; init; } // [C, C]
    public float* ProjBias { get; init; }   // [C]
    public float* Ln2Weight { get; init; }  // [C]
    public float* Ln2Bias { get; init; }    // [C]
    public float* FcWeight { get; init; }   // [4C, C]
    public float* FcBias { get; init; }     // [4C]
    public float* OutWeight { get; init; }  // [C, 4C]
    public float* OutBias { get; init; }    // [C]
}

/// <summary>
/// The transformer's weights as float32, immutable once loaded and safe to share between sessions
/// and threads. F32 tensors point into the memory-mapped file (no copy); F16/BF16 tensors are widened
/// once into native memory owned by this object. Dispose releases both: the model owning this does.
/// </summary>
public sealed unsafe class TransformerWeights : IDisposable
{
    private readonly SafetensorsFile _file;
    private readonly List<nint> _owned = new();
    private bool _disposed;

    public ModelConfig Config { get; }
    public float* TokenEmbedding { get; private set; }    // [V, C]
    public float* PositionEmbedding { get; private set; } // [P, C]
    public LayerWeights[] Layers { get; }
    public float* LnFinalWeight { get; private set; }     // [C]
    public float* LnFinalBias { get; private set; }       // [C]
    public float* Head { get; private set; }              // [V, C]
    /// <summary>
    /// transformer.uncond_embedding [cond_token_num, C]: what the classifier-free guidance's unconditional stream embeds
    /// in place of the condition tokens; null when the checkpoint has none (or an empty one).
    /// </summary>
    public float* UnconditionalEmbedding { get; private set; }
    /// <summary>Bytes of float32 weights in use (mapped or converted).</summary>
    public long ParameterCount { get; private set; }
    /// <summary>Bytes converted into native memory (F16/BF16 tensors).</summary>
    public long ConvertedBytes { get; private set; }

    private readonly bool _checkFinite;

    private TransformerWeights(SafetensorsFile file, ModelConfig config, bool checkFinite)
    {
        _file = file;
        _checkFinite = checkFinite;
        Config = config;
        Layers = new LayerWeights[config.LayerCount];
    }

    /// <summary>Maps every transformer key of <paramref name="file"/>; takes ownership of the file.</summary>
    /// <param name="checkFinite">scan every weight for NaN and infinities (one pass over the file, vectorised); off only for trusted files</param>
    public static TransformerWeights Load(SafetensorsFile file, ModelConfig config, ILogger logger, IProgress<float>? progress = null, CancellationToken ct = default,
        bool checkFinite = true)
    {
        var w = new TransformerWeights(file, config, checkFinite);
        try
        {
            w.MapAll(logger, progress, ct);
            return w;
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    private void MapAll(ILogger logger, IProgress<float>? progress, CancellationToken ct)
    {
        int c = Config.EmbeddingSize, v = Config.VocabSize, p = Config.PositionCount;
        var used = new HashSet<string>(StringComparer.Ordinal);
        const string t = "transformer.";
        TokenEmbedding = Map(t + "tok_emb.weight", [v, c], used);
        PositionEmbedding = Map(t + "pos_emb", [1, p, c], used);
        for (int i = 0; i < Config.LayerCount; i++)
        {
            ct.ThrowIfCancellationRequested();
            string b = $"{t}blocks.{i}.";
            Layers[i] = new LayerWeights
            {
                Ln1Weight = Map(b + "ln1.weight", [c], used),
                Ln1Bias = Map(b + "ln1.bias", [c], used),
                QueryWeight = Map(b + "attn.query.weight", [c, c], used),
                QueryBias = Map(b + "attn.query.bias", [c], used),
                KeyWeight = Map(b + "attn.key.weight", [c, c], used),
                KeyBias = Map(b + "attn.key.bias", [c], used),
                ValueWeight = Map(b + "attn.value.weight", [c, c], used),
                ValueBias = Map(b + "attn.value.bias", [c], used),
                ProjWeight = Map(b + "attn.proj.weight", [c, c], used),
                ProjBias = Map(b + "attn.proj.bias", [c], used),
                Ln2Weight = Map(b + "ln2.weight", [c], used),
                Ln2Bias = Map(b + "ln2.bias", [c], used),
                FcWeight = Map(b + "mlp.0.weight", [4L * c, c], used),
                FcBias = Map(b + "mlp.0.bias", [4L * c], used),
                OutWeight = Map(b + "mlp.2.weight", [c, 4L * c], used),
                OutBias = Map(b + "mlp.2.bias", [c], used),
            };
            progress?.Report((i + 1f) / (Config.LayerCount + 1));
        }
        LnFinalWeight = Map(t + "ln_f.weight", [c], used);
        LnFinalBias = Map(t + "ln_f.bias", [c], used);
        Head = Map(t + "head.weight", [v, c], used);
        if (_file.TryGetTensor(t + "uncond_embedding", out var uncond) && uncond.Shape.Aggregate(1L, (a, d) => a * d) > 0)
            UnconditionalEmbedding = Map(t + "uncond_embedding", [Config.CondTokenCount, c], used);

        int ignored = 0;
        foreach (var tensor in _file.Tensors)
        {
            if (used.Contains(tensor.Name)) continue;
            ignored++;
            if (tensor.Name.StartsWith("first_stage_model.", StringComparison.Ordinal) || tensor.Name == t + "uncond_embedding") continue; // empty uncond
            logger.LogInformation("{Path}: ignoring unknown tensor '{Key}' {Shape}", _file.Path, tensor.Name, tensor.ShapeText);
        }
        if (ignored > 0) logger.LogInformation("{Path}: {Count} tensors not used by the transformer (tokenizer, an empty uncond_embedding, unknown)", _file.Path, ignored);
        progress?.Report(1f);
    }

    private float* Map(string key, long[] expected, HashSet<string> used)
    {
        if (!_file.TryGetTensor(key, out var tensor))
            throw new WeightShapeException($"{_file.Path}: required tensor '{key}' is missing (expected shape {TensorInfo.FormatShape(expected)})");
        if (!tensor.Shape.SequenceEqual(expected))
            throw new WeightShapeException($"{_file.Path}: tensor '{key}' has shape {tensor.ShapeText}, expected {TensorInfo.FormatShape(expected)}");
        used.Add(key);
        ParameterCount += tensor.ElementCount;
        float* values;
        if (tensor.DType == TensorDType.F32) values = (float*)_file.GetPointer(tensor);
        else
        {
            long bytes = tensor.ElementCount * sizeof(float);
            values = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
            _owned.Add((nint)values);
            ConvertedBytes += bytes;
            SafetensorsFile.Widen(_file.GetPointer(tensor), tensor.DType, values, tensor.ElementCount);
        }
        if (_checkFinite) CheckFinite(tensor, values);
        return values;
    }

    private void CheckFinite(TensorInfo tensor, float* values)
    {
        if (FiniteValues.Describe(_file.Path, tensor, values) is { } problem)
            throw new WeightValueException($"{problem}; the weights are broken (--skip-finite-check loads them anyway)");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _owned) NativeMemory.AlignedFree((void*)p);
        _owned.Clear();
        _file.Dispose();
    }
}
