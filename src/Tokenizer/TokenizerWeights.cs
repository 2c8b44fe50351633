using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Cpu;

namespace NbpEngine.Tokenizer;

/// <summary>
/// The tokenizer's tensors from a safetensors file, keys accepted bare or under `first_stage_model.`
/// or `module.` (TOKENIZER.md, Key names). Everything is widened to fp32 in native memory; conv
/// weights are permuted once from [cout, cin, kt, kh, kw] to [cout, kt, kh, kw, cin] for the
/// channels-last implicit GEMM.
/// </summary>
internal sealed unsafe class TokenizerWeights : IDisposable
{
    private static readonly string[] Prefixes = ["first_stage_model.", "module."];
    private readonly SafetensorsFile _file;
    private readonly Dictionary<string, TensorInfo> _tensors = new(StringComparer.Ordinal);
    private readonly NativeArena _arena = new();

    public string Path => _file.Path;
    public IReadOnlyDictionary<string, string> Metadata => _file.Metadata;

    public TokenizerWeights(string path)
    {
        _file = SafetensorsFile.Open(path);
        foreach (var t in _file.Tensors)
        {
            string name = t.Name;
            foreach (var prefix in Prefixes)
                if (name.StartsWith(prefix, StringComparison.Ordinal)) name = name[prefix.Length..];
            if (!name.StartsWith("decoder_layers.", StringComparison.Ordinal) && !name.StartsWith("encoder_layers.", StringComparison.Ordinal)) continue;
            if (!_tensors.TryAdd(name, t))
                throw new InvalidDataException($"{path}: tokenizer tensor '{name}' appears twice ('{_tensors[name].Name}' and '{t.Name}')");
        }
        if (_tensors.Count == 0)
            throw new InvalidDataException($"{path}: no tokenizer tensors (expected keys 'decoder_layers.*' / 'encoder_layers.*', bare or under 'first_stage_model.' or 'module.')");
    }

    public bool Has(string key) => _tensors.ContainsKey(key);

    public TensorInfo Info(string key, int rank)
    {
        if (!_tensors.TryGetValue(key, out var t)) throw new InvalidDataException($"{Path}: required tokenizer tensor '{key}' is missing");
        if (t.Shape.Length != rank) throw new InvalidDataException($"{Path}: tokenizer tensor '{key}' has shape {t.ShapeText}, expected {rank} dimensions");
        return t;
    }

    /// <summary>A vector of <paramref name="length"/> floats (GroupNorm affine, biases, Swish beta of shape [1, C, 1, 1, 1]).</summary>
    public float* Vector(string key, int length)
    {
        if (!_tensors.TryGetValue(key, out var t)) throw new InvalidDataException($"{Path}: required tokenizer tensor '{key}' is missing");
        if (t.ElementCount != length) throw new InvalidDataException($"{Path}: tokenizer tensor '{key}' has shape {t.ShapeText}, expected {length} values");
        float* p = _arena.Floats(length);
        SafetensorsFile.Widen(_file.GetPointer(t), t.DType, p, length);
        RequireFinite(t, p);
        return p;
    }

    /// <summary>Conv weight [cout, cin, kt, kh, kw] -> native [cout, kt, kh, kw, cin].</summary>
    public float* ConvWeight(string key, out int cout, out int cin, out int kt, out int kh, out int kw)
    {
        var t = Info(key, 5);
        cout = (int)t.Shape[0]; cin = (int)t.Shape[1]; kt = (int)t.Shape[2]; kh = (int)t.Shape[3]; kw = (int)t.Shape[4];
        var raw = new float[t.ElementCount];
        fixed (float* r = raw)
        {
            SafetensorsFile.Widen(_file.GetPointer(t), t.DType, r, raw.Length);
            RequireFinite(t, r);
        }
        float* p = _arena.Floats(raw.Length);
        int taps = kt * kh * kw;
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < cin; i++)
                for (int k = 0; k < taps; k++)
                    p[((long)o * taps + k) * cin + i] = raw[((long)o * cin + i) * taps + k];
        return p;
    }

    public float* Floats(long count) => _arena.Floats(count);

    private void RequireFinite(TensorInfo tensor, float* values)
    {
        if (FiniteValues.Describe(Path, tensor, values) is { } problem) throw new InvalidDataException($"{problem}; the tokenizer weights are broken");
    }

    public void Dispose()
    {
        _arena.Dispose();
        _file.Dispose();
    }
}
