using NbpEngine.Tokenizer.Cpu;
using NbpEngine.Core;

namespace NbpEngine.Tokenizer;

/// <summary>
/// The MAGVIT-v2/FSQ video tokenizer on the CPU (TOKENIZER.md): pixels [3, T, H, W] in [0, 1] to FSQ
/// indices [t, h, w] and back. Layer widths come from the weights, so narrow test tokenizers load
/// through the same code. One call at a time (calls share a kept workspace); dispose to free the weights.
/// </summary>
public sealed unsafe class VideoTokenizer : IDisposable
{
    private readonly TokenizerWeights _weights;
    private readonly List<TokenizerLayer> _decoder = new(), _encoder = new();

    public string SourcePath => _weights.Path;
    internal IReadOnlyList<TokenizerLayer> DecoderLayers => _decoder;
    internal IReadOnlyList<TokenizerLayer> EncoderLayers => _encoder;
    public bool HasDecoder => _decoder.Count > 0;
    public bool HasEncoder => _encoder.Count > 0;
    /// <summary>The FSQ levels of the file's <c>fsq_levels</c> metadata; TOKENIZER.md's 8,8,8,5,5,5 when it names none.</summary>
    public FsqLevels Levels { get; }
    public int CodebookSize => Levels.CodebookSize;
    /// <summary>Spatial downsampling of the encoder (8 for the published tokenizers).</summary>
    public const int SpatialFactor = NbpEngine.Core.ModelConfig.SpatialFactor;
    public int MaxChannels { get; }
    /// <summary>How the CPU runs the 3x3x3 convs (Auto: Winograd where it pays). For benchmarks and tests.</summary>
    public ConvAlgorithm ConvAlgorithm { get; set; } = ConvAlgorithm.Auto;
    /// <summary>Bytes of CPU weight copies the convs have made so far (packed panels, Winograd transforms).</summary>
    public long CpuWeightBytes => _decoder.Concat(_encoder).SelectMany(l => l.Convs).Sum(c => c.CpuWeightBytes);

    public VideoTokenizer(string path)
    {
        _weights = new TokenizerWeights(path);
        try
        {
            Levels = _weights.Metadata.TryGetValue(FsqLevels.MetadataKey, out var levels)
                ? FsqLevels.Parse(levels, $"{path}: metadata {FsqLevels.MetadataKey}")
                : FsqLevels.Published;
            if (_weights.Has("decoder_layers.0.conv.weight")) BuildDecoder();
            if (_weights.Has("encoder_layers.0.conv.weight")) BuildEncoder();
            if (!HasDecoder && !HasEncoder) throw new InvalidDataException($"{path}: neither 'decoder_layers.0.conv.weight' nor 'encoder_layers.0.conv.weight' found");
            MaxChannels = _decoder.Concat(_encoder).Max(l => Math.Max(l.InChannels, l.OutChannels));
        }
        catch
        {
            _weights.Dispose();
            throw;
        }
    }

    /// <remarks>Each conv makes CPU copies of its weights on first use (released on Dispose).</remarks>
    private Conv3d Conv(string key, (int, int, int) stride, bool causal = true)
    {
        float* w = _weights.ConvWeight(key + ".weight", out int cout, out int cin, out int kt, out int kh, out int kw);
        // the weight's first dimension sets cout: a bias that disagrees may mean either tensor is wrong, so name both
        var bias = _weights.Info(key + ".bias", 1);
        if (bias.ElementCount != cout)
            throw new InvalidDataException($"{_weights.Path}: conv '{key}': weight {_weights.Info(key + ".weight", 5).ShapeText} has {cout} output channels " +
                                           $"but its bias has shape {bias.ShapeText}; one of the two is mis-shaped");
        return new Conv3d(cin, cout, kt, kh, kw, stride, w, _weights.Vector(key + ".bias", cout), causal);
    }

    private GroupNormSwish NormSwish(string norm, string? swishBeta, int channels) =>
        new(channels, _weights.Vector(norm + ".weight", channels), _weights.Vector(norm + ".bias", channels),
            swishBeta is null ? null : _weights.Vector(swishBeta, channels));

    private ResidualLayer Residual(string prefix)
    {
        var conv1 = Conv(prefix + ".fn.2.conv", (1, 1, 1));
        var conv2 = Conv(prefix + ".fn.5.conv", (1, 1, 1));
        var norm1 = NormSwish(prefix + ".fn.0", prefix + ".fn.1.beta", conv1.InChannels);
        var norm2 = NormSwish(prefix + ".fn.3", prefix + ".fn.4.beta", conv1.OutChannels);
        Conv3d? residual = _weights.Has(prefix + ".residual_fn.0.conv.weight") ? Conv(prefix + ".residual_fn.0.conv", (1, 1, 1)) : null;
        if (residual is null && conv1.InChannels != conv2.OutChannels)
            throw new InvalidDataException($"{SourcePath}: residual unit '{prefix}' changes width {conv1.InChannels} -> {conv2.OutChannels} but has no '{prefix}.residual_fn.0.conv.weight'");
        return new ResidualLayer(norm1, conv1, norm2, conv2, residual);
    }

    private void BuildDecoder()
    {
        const string p = "decoder_layers.";
        for (int i = 0; i < 30; i++)
        {
            string key = p + i;
            TokenizerLayer layer = i switch
            {
                0 or 9 or 15 or 21 or 29 => new ConvLayer(Conv(key + ".conv", (1, 1, 1))),
                10 or 16 => new Depth2SpaceLayer(2, 2, 2, _decoder[^1].OutChannels),
                22 => new Depth2SpaceLayer(1, 2, 2, _decoder[^1].OutChannels),
                27 => new NormSwishLayer(NormSwish(key, p + "28.beta", _decoder[^1].OutChannels)),
                28 => null!, // fused into 27
                _ => Residual(key),
            };
            if (layer is null) continue;
            Chain(_decoder, layer, key);
        }
        if (_decoder[0].InChannels != Fsq.Dimensions) throw new InvalidDataException($"{SourcePath}: decoder_layers.0 takes {_decoder[0].InChannels} channels, expected the {Fsq.Dimensions} FSQ dimensions");
        if (_decoder[^1].OutChannels != 3) throw new InvalidDataException($"{SourcePath}: decoder_layers.29 outputs {_decoder[^1].OutChannels} channels, expected 3 (RGB)");
    }

    private void BuildEncoder()
    {
        const string p = "encoder_layers.";
        for (int i = 0; i < 27; i++)
        {
            string key = p + i;
            TokenizerLayer layer = i switch
            {
                0 => new ConvLayer(Conv(key + ".conv", (1, 1, 1))),
                5 => new ConvLayer(Conv(key + ".conv", (1, 2, 2))),
                10 or 15 => new ConvLayer(Conv(key + ".conv", (2, 2, 2))),
                24 => new NormSwishLayer(NormSwish(key, p + "25.beta", _encoder[^1].OutChannels)),
                25 => null!,
                26 => new ConvLayer(Conv(key, (1, 1, 1), causal: false)), // plain Conv3d(512 -> 6, 1): keys without '.conv'
                _ => Residual(key),
            };
            if (layer is null) continue;
            Chain(_encoder, layer, key);
        }
        if (_encoder[0].InChannels != 3) throw new InvalidDataException($"{SourcePath}: encoder_layers.0 takes {_encoder[0].InChannels} channels, expected 3 (RGB)");
        if (_encoder[^1].OutChannels != Fsq.Dimensions) throw new InvalidDataException($"{SourcePath}: encoder_layers.26 outputs {_encoder[^1].OutChannels} channels, expected {Fsq.Dimensions}");
    }

    private void Chain(List<TokenizerLayer> list, TokenizerLayer layer, string key)
    {
        if (list.Count > 0 && list[^1].OutChannels != layer.InChannels)
            throw new InvalidDataException($"{SourcePath}: '{key}' takes {layer.InChannels} channels but the previous layer gives {list[^1].OutChannels}");
        list.Add(layer);
    }

    /// <summary>Latent frames for <paramref name="frames"/> video frames (1 + 4n -> 1 + n).</summary>
    public static int LatentFrames(int frames)
    {
        if (frames < 1 || (frames - 1) % 4 != 0) throw new NbpInputException($"frame count must be 1 + 4n (first frame alone, then clips of 4), found {frames}");
        return 1 + (frames - 1) / 4;
    }

    /// <summary>FSQ indices [t, h, w] -> pixels [3, 4t - 3, 8h, 8w] clamped to [0, 1].</summary>
    public float[] Decode(ReadOnlySpan<int> indices, int latentFrames, int latentHeight, int latentWidth, int threads, IProgress<float>? progress = null)
    {
        if (!HasDecoder) throw new InvalidDataException($"{SourcePath} has no decoder weights");
        if (indices.Length != (long)latentFrames * latentHeight * latentWidth)
            throw new ArgumentException($"{indices.Length} indices for a [{latentFrames}, {latentHeight}, {latentWidth}] latent");
        var x = new Volume(latentFrames, latentHeight, latentWidth, Fsq.Dimensions);
        for (int i = 0; i < indices.Length; i++) Fsq.Code(Levels, indices[i], new Span<float>(x.Data + (long)i * Fsq.Dimensions, Fsq.Dimensions));
        var ws = Workspace(threads);
        x = RunLayers(_decoder, ws, x, progress);
        using (x)
        {
            var pixels = new float[x.Length];
            long plane = (long)x.Frames * x.Height * x.Width;
            for (long p = 0; p < plane; p++)
                for (int c = 0; c < 3; c++) pixels[c * plane + p] = Math.Clamp(x.Data[p * 3 + c], 0f, 1f);
            return pixels;
        }
    }

    /// <summary>Pixels [3, T, H, W] in [0, 1] -> FSQ indices [t, h, w]; <paramref name="bounded"/> gets the pre-rounding values [t, h, w, 6] if given.</summary>
    public int[] Encode(ReadOnlySpan<float> pixels, int frames, int height, int width, int threads, float[]? bounded = null, IProgress<float>? progress = null)
    {
        if (!HasEncoder) throw new InvalidDataException($"{SourcePath} has no encoder weights");
        LatentFrames(frames);
        if (height % SpatialFactor != 0 || width % SpatialFactor != 0) throw new ArgumentException($"frame size {height}x{width} must be a multiple of {SpatialFactor}");
        if (pixels.Length != 3L * frames * height * width) throw new ArgumentException($"{pixels.Length} values for [3, {frames}, {height}, {width}] pixels");
        var x = new Volume(frames, height, width, 3);
        long plane = (long)frames * height * width;
        for (long p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++) x.Data[p * 3 + c] = pixels[(int)(c * plane + p)];
        var ws = Workspace(threads);
        using var z = RunLayers(_encoder, ws, x, progress);
        var indices = new int[z.Positions];
        Span<float> values = stackalloc float[Fsq.Dimensions];
        for (long p = 0; p < z.Positions; p++)
        {
            for (int d = 0; d < Fsq.Dimensions; d++)
            {
                values[d] = z.Data[p * Fsq.Dimensions + d];
                if (bounded is not null) bounded[p * Fsq.Dimensions + d] = Fsq.Bounded(Levels, values[d], d);
            }
            indices[p] = Fsq.Quantize(Levels, values);
        }
        return indices;
    }

    /// <summary>Floating-point operations (2 x multiply-adds of every conv) of decoding a [t, h, w] latent.</summary>
    public double DecodeFlops(int latentFrames, int latentHeight, int latentWidth) => Flops(_decoder, (latentFrames, latentHeight, latentWidth));

    /// <summary>Floating-point operations of encoding <paramref name="frames"/> frames of height x width.</summary>
    public double EncodeFlops(int frames, int height, int width) => Flops(_encoder, (frames, height, width));

    /// <summary>Floating-point operations the CPU GEMMs execute for that decode under <see cref="ConvAlgorithm"/> (fewer than <see cref="DecodeFlops"/> with Winograd).</summary>
    public double DecodeGemmFlops(int latentFrames, int latentHeight, int latentWidth) =>
        ConvOutputs(_decoder, (latentFrames, latentHeight, latentWidth)).Sum(c => c.Conv.GemmFlops(ConvAlgorithm, c.Output));

    /// <summary>As <see cref="DecodeGemmFlops"/> for encoding.</summary>
    public double EncodeGemmFlops(int frames, int height, int width) =>
        ConvOutputs(_encoder, (frames, height, width)).Sum(c => c.Conv.GemmFlops(ConvAlgorithm, c.Output));

    private static double Flops(List<TokenizerLayer> layers, (int T, int H, int W) shape) =>
        ConvOutputs(layers, shape).Sum(c => c.Conv.DirectFlops(c.Output));

    /// <summary>Every conv of the layer list with its output shape, for an input of <paramref name="shape"/>.</summary>
    private static IEnumerable<(Conv3d Conv, (int T, int H, int W) Output)> ConvOutputs(List<TokenizerLayer> layers, (int T, int H, int W) shape)
    {
        foreach (var layer in layers)
        {
            if (layer is Depth2SpaceLayer d)
            {
                shape = (shape.T * d.Factors.T - (d.Factors.T - 1), shape.H * d.Factors.H, shape.W * d.Factors.W);
                continue;
            }
            foreach (var conv in layer.Convs)
            {
                var o = ((shape.T + 2 * (conv.KT / 2) - conv.KT) / conv.Stride.T + 1, (shape.H + 2 * (conv.KH / 2) - conv.KH) / conv.Stride.H + 1,
                    (shape.W + 2 * (conv.KW / 2) - conv.KW) / conv.Stride.W + 1);
                yield return (conv, o);
                if (conv.Stride != (1, 1, 1)) shape = o; // only strided convs change the shape
            }
        }
    }

    /// <summary>
    /// Makes the CPU weight copies (packed panels, Winograd transforms) a decode of this latent size will
    /// use, so they are not made during the first decode. Returns the seconds it took (~0 when done before).
    /// </summary>
    public double PrepareDecode(int latentFrames, int latentHeight, int latentWidth) => Prepare(_decoder, (latentFrames, latentHeight, latentWidth));

    /// <summary>As <see cref="PrepareDecode"/> for encoding <paramref name="frames"/> frames of height x width.</summary>
    public double PrepareEncode(int frames, int height, int width) => Prepare(_encoder, (frames, height, width));

    private double Prepare(List<TokenizerLayer> layers, (int T, int H, int W) shape)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var (conv, output) in ConvOutputs(layers, shape)) conv.Prepare(ConvAlgorithm, output.H, output.W);
        return clock.Elapsed.TotalSeconds;
    }

    private TokenizerWorkspace? _workspace;

    /// <summary>
    /// The workspace (threads, scratch, pooled activation buffers) is kept between calls: a fresh one per
    /// call re-faulted ~2.7 GB of pages per full decode (seconds of system time on the development VM).
    /// Remade when the thread count or conv algorithm changes; <see cref="TrimMemory"/> or Dispose frees it.
    /// </summary>
    private TokenizerWorkspace Workspace(int threads)
    {
        if (_workspace is { } ws && ws.Pool.ThreadCount == threads && ws.Algorithm == ConvAlgorithm) return ws;
        _workspace?.Dispose();
        return _workspace = new TokenizerWorkspace(threads, MaxChannels, ConvAlgorithm);
    }

    /// <summary>Frees the kept workspace (scratch and pooled activations, up to ~1.3 GB at full size) until the next call.</summary>
    public void TrimMemory()
    {
        _workspace?.Dispose();
        _workspace = null;
    }

    private static Volume RunLayers(List<TokenizerLayer> layers, TokenizerWorkspace ws, Volume x, IProgress<float>? progress)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].Run(ws, x);
            progress?.Report((i + 1f) / layers.Count);
        }
        return x;
    }

    public void Dispose()
    {
        TrimMemory();
        foreach (var conv in _decoder.Concat(_encoder).SelectMany(l => l.Convs)) conv.ReleasePacked();
        _weights.Dispose();
    }
}
