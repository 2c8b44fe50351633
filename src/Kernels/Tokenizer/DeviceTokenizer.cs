using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tokenizer;

using NbpEngine.Tokenizer.Cpu;
using NbpEngine.Core;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>
/// The tokenizer's layer list run with the ILGPU kernels (src/Kernels/Tokenizer) on CUDA or the CPU
/// accelerator. Weights are uploaded once from a loaded <see cref="VideoTokenizer"/>; activations are
/// channels-last device buffers freed as soon as the next layer has consumed them, like the CPU path.
/// With tensor cores (the default on CUDA) every conv is an implicit GEMM on mma.sync with fp16 operands and fp32
/// accumulation (emulated lane for lane on the CPU accelerator); otherwise the fp32 kernel. A conv followed by
/// Depth2Space writes the rearranged volume directly (one pass less over the decoder's largest volumes).
/// </summary>
public sealed class DeviceTokenizer : IDisposable
{
    private readonly VideoTokenizer _model;
    private readonly IlgpuDevice _device;
    private readonly AcceleratorStream _stream;
    private readonly TokenizerKernelSet _kernels;
    private readonly Dictionary<object, (ArrayView<float> A, ArrayView<float> B, ArrayView<float> C)> _params = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Conv3d, ArrayView<Bits128>> _packed = new(ReferenceEqualityComparer.Instance);
    private readonly List<MemoryBuffer> _weights = new();

    public string Name => _device.Kind == IlgpuDeviceKind.Cuda ? "cuda" : "ilgpu-cpu";

    /// <summary>Convs on tensor cores (fp16 operands, fp32 accumulation) rather than the fp32 kernel.</summary>
    public bool TensorCores { get; }

    /// <param name="tensorCores">null: on for CUDA, off for the CPU accelerator (where the mma is emulated)</param>
    public DeviceTokenizer(VideoTokenizer model, IlgpuDeviceKind kind, bool? tensorCores = null)
    {
        _model = model;
        TensorCores = tensorCores ?? SessionOptions.TensorCoresByDefault(kind == IlgpuDeviceKind.Cuda ? BackendKind.Cuda : BackendKind.IlgpuCpu);
        _device = new IlgpuDevice(kind);
        try
        {
            _stream = _device.Accelerator.CreateStream();
            _kernels = new TokenizerKernelSet(_device.Accelerator);
            foreach (var layer in model.DecoderLayers.Concat(model.EncoderLayers)) UploadParameters(layer);
            _stream.Synchronize();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>An activation volume on a pooled buffer; disposing it gives the buffer back to the pool.</summary>
    private sealed class DeviceVolume(DeviceTokenizer owner, MemoryBuffer1D<float, Stride1D.Dense> buffer, int t, int h, int w, int c) : IDisposable
    {
        public ArrayView<float> View => buffer.View;
        public int T => t; public int H => h; public int W => w; public int C => c;
        public long Length => (long)t * h * w * c;
        public VolumeArgs Args => new() { T = t, H = h, W = w, C = c };
        public void Dispose() => owner.Return(buffer);
    }

    // The workspace: freed volumes wait here by exact length, so a second encode or decode of the same shape allocates
    // nothing (a device allocation or free is an implicit synchronisation on CUDA; a decode made 52 of each).
    private readonly Dictionary<long, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> _free = new();
    private readonly Dictionary<long, MemoryBuffer1D<int, Stride1D.Dense>> _idBuffers = new();

    /// <summary>Device buffers allocated for activations and ids so far (flat after the first pass of a shape).</summary>
    public long Allocations { get; private set; }

    private DeviceVolume NewVolume(int t, int h, int w, int c)
    {
        long length = (long)t * h * w * c;
        if (!_free.TryGetValue(length, out var free) || !free.TryPop(out var buffer))
        {
            buffer = _device.Accelerator.Allocate1D<float>(length);
            Allocations++;
        }
        return new DeviceVolume(this, buffer, t, h, w, c);
    }

    private void Return(MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        if (!_free.TryGetValue(buffer.Length, out var free)) _free[buffer.Length] = free = new Stack<MemoryBuffer1D<float, Stride1D.Dense>>();
        free.Push(buffer);
    }

    /// <summary>The id buffer for <paramref name="positions"/> FSQ indices, kept for the next call of that size.</summary>
    private ArrayView<int> Ids(int positions)
    {
        if (!_idBuffers.TryGetValue(positions, out var buffer))
        {
            _idBuffers[positions] = buffer = _device.Accelerator.Allocate1D<int>(positions);
            Allocations++;
        }
        return buffer.View;
    }

    private ArrayView<float> Upload(ReadOnlySpan<float> values)
    {
        var buffer = _device.Accelerator.Allocate1D<float>(Math.Max(values.Length, 1));
        _weights.Add(buffer);
        if (values.Length > 0) buffer.View.SubView(0, values.Length).CopyFromCPU(_stream, values);
        return buffer.View;
    }

    private void UploadParameters(TokenizerLayer layer)
    {
        switch (layer)
        {
            case ConvLayer c: UploadConv(c.Conv); break;
            case NormSwishLayer n: UploadNorm(n.Norm); break;
            case ResidualLayer r:
                UploadNorm(r.Parts.Norm1); UploadConv(r.Parts.Conv1); UploadNorm(r.Parts.Norm2); UploadConv(r.Parts.Conv2);
                if (r.Parts.Residual is { } residual) UploadConv(residual);
                break;
        }
    }

    private void UploadConv(Conv3d conv)
    {
        if (!TensorCores)
        {
            _params[conv] = (Upload(conv.Weight), Upload(conv.Bias), default);
            return;
        }
        _params[conv] = (default, Upload(conv.Bias), default);
        int depth = conv.KT * conv.KH * conv.KW * conv.InChannels;
        var halves = TensorCoreConv3dKernel.PackWeights(conv.Weight, conv.OutChannels, depth);
        var buffer = _device.Accelerator.Allocate1D<Bits128>(halves.Length / 8);
        _weights.Add(buffer);
        buffer.View.AsContiguous().Cast<ushort>().CopyFromCPU(_stream, halves);
        _packed[conv] = buffer.View;
    }

    private void UploadNorm(GroupNormSwish norm) =>
        _params[norm] = (Upload(norm.Gamma), Upload(norm.Beta), norm.SwishBeta.IsEmpty ? Upload(new float[1]) : Upload(norm.SwishBeta));

    /// <summary>y (=|+=) conv(x); with <paramref name="depth2Space"/>, y is the rearranged volume (Conv3dArgs.BT).</summary>
    private void Conv(Conv3d conv, DeviceVolume x, DeviceVolume y, bool accumulate, (int T, int H, int W) depth2Space = default)
    {
        var (weight, bias, _) = _params[conv];
        var (to, ho, wo) = ConvShape(conv, x);
        var args = new Conv3dArgs
        {
            T = x.T, H = x.H, W = x.W, Cin = x.C, To = to, Ho = ho, Wo = wo, Cout = conv.OutChannels,
            KT = conv.KT, KH = conv.KH, KW = conv.KW, ST = conv.Stride.T, SH = conv.Stride.H, SW = conv.Stride.W, Accumulate = accumulate ? 1 : 0,
            BT = depth2Space.T, BH = depth2Space.H, BW = depth2Space.W,
        };
        int positions = to * ho * wo;
        if (!TensorCores)
        {
            _kernels.Conv3d(_stream, TokenizerKernelSet.ConvGrid(positions, conv.OutChannels, _device.Shape.GroupSize), x.View, weight, bias, y.View, args);
            return;
        }
        // the tensor-core gather indexes with 32-bit integers
        if (x.Length > int.MaxValue || y.Length > int.MaxValue)
            throw new NotSupportedException($"tokenizer volume [{x.T}, {x.H}, {x.W}, {x.C}] -> [{y.T}, {y.H}, {y.W}, {y.C}] exceeds 2^31 elements for the tensor-core conv; run with tensor cores off");
        var vectors = x.View.SubView(0, x.Length / 4 * 4).Cast<Float4>();
        _kernels.TensorCoreConv3d(x.C)(_stream, MmaTile.Launch(positions, conv.OutChannels, MmaTile.Warps(_device.Shape.GroupSize)), x.View, vectors, _packed[conv], bias, y.View, args);
    }

    private static (int T, int H, int W) ConvShape(Conv3d conv, DeviceVolume x) =>
        ((x.T + 2 * (conv.KT / 2) - conv.KT) / conv.Stride.T + 1,
         (x.H + 2 * (conv.KH / 2) - conv.KH) / conv.Stride.H + 1,
         (x.W + 2 * (conv.KW / 2) - conv.KW) / conv.Stride.W + 1);

    private DeviceVolume ConvNew(Conv3d conv, DeviceVolume x)
    {
        var (t, h, w) = ConvShape(conv, x);
        var y = NewVolume(t, h, w, conv.OutChannels);
        Conv(conv, x, y, accumulate: false);
        return y;
    }

    /// <summary>A conv and the Depth2Space after it, in one kernel: the conv's epilogue stores straight into the rearranged volume.</summary>
    private DeviceVolume ConvDepth2Space(Conv3d conv, Depth2SpaceLayer d, DeviceVolume x)
    {
        var (t, h, w) = ConvShape(conv, x);
        var (bt, bh, bw) = d.Factors;
        var y = NewVolume(t * bt - (bt - 1), h * bh, w * bw, conv.OutChannels / (bt * bh * bw));
        Conv(conv, x, y, accumulate: false, d.Factors);
        x.Dispose();
        return y;
    }

    /// <summary>Runs the layer list, fusing each conv with a Depth2Space that follows it.</summary>
    private DeviceVolume RunLayers(IReadOnlyList<TokenizerLayer> layers, DeviceVolume x, IProgress<float>? progress)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i] is ConvLayer c && i + 1 < layers.Count && layers[i + 1] is Depth2SpaceLayer d)
            {
                x = ConvDepth2Space(c.Conv, d, x);
                i++;
            }
            else x = Run(layers[i], x);
            progress?.Report((i + 1f) / layers.Count);
        }
        return x;
    }

    private void Norm(GroupNormSwish norm, DeviceVolume x, DeviceVolume y)
    {
        var (gamma, beta, swish) = _params[norm];
        _kernels.GroupNormSwish(_stream, new KernelConfig(x.T * GroupNormSwishKernel.Groups, _device.Shape.GroupSize), x.View, gamma, beta, swish, y.View, x.Args,
            norm.SwishBeta.IsEmpty ? 0 : 1);
    }

    private DeviceVolume Run(TokenizerLayer layer, DeviceVolume x)
    {
        switch (layer)
        {
            case ConvLayer c:
            {
                var y = ConvNew(c.Conv, x);
                x.Dispose();
                return y;
            }
            case NormSwishLayer n:
                Norm(n.Norm, x, x);
                return x;
            case Depth2SpaceLayer:
                // the layer lists always put a conv first, and RunLayers fuses the pair into the conv's store
                throw new InvalidOperationException("Depth2Space without a conv before it");
            case ResidualLayer r:
            {
                var (norm1, conv1, norm2, conv2, residual) = r.Parts;
                var h = NewVolume(x.T, x.H, x.W, x.C);
                Norm(norm1, x, h);
                var h2 = ConvNew(conv1, h);
                h.Dispose();
                Norm(norm2, h2, h2);
                DeviceVolume output = x;
                if (residual is not null)
                {
                    output = ConvNew(residual, x);
                    x.Dispose();
                }
                Conv(conv2, h2, output, accumulate: true);
                h2.Dispose();
                return output;
            }
            default:
                throw new NotSupportedException(layer.GetType().Name);
        }
    }

    /// <summary>FSQ indices [t, h, w] -> pixels [3, 4t - 3, 8h, 8w] in [0, 1], on the device.</summary>
    public float[] Decode(ReadOnlySpan<int> indices, int latentFrames, int latentHeight, int latentWidth, IProgress<float>? progress = null)
    {
        if (!_model.HasDecoder) throw new InvalidDataException($"{_model.SourcePath} has no decoder weights");
        int positions = latentFrames * latentHeight * latentWidth;
        if (indices.Length != positions) throw new ArgumentException($"{indices.Length} indices for a [{latentFrames}, {latentHeight}, {latentWidth}] latent");
        foreach (int index in indices)
            if ((uint)index >= _model.CodebookSize) throw new ArgumentOutOfRangeException(nameof(indices), index, $"FSQ index must be in [0, {_model.CodebookSize})");
        var ids = Ids(positions);
        ids.CopyFromCPU(_stream, indices);
        var x = NewVolume(latentFrames, latentHeight, latentWidth, Fsq.Dimensions);
        _kernels.FsqCodes(_stream, new KernelConfig((positions + _device.Shape.GroupSize - 1) / _device.Shape.GroupSize, _device.Shape.GroupSize), ids, x.View, positions, _model.Levels);
        x = RunLayers(_model.DecoderLayers, x, progress);
        using (x)
        {
            var channelsLast = new float[x.Length];
            x.View.SubView(0, x.Length).CopyToCPU(_stream, channelsLast);
            _stream.Synchronize();
            var pixels = new float[x.Length];
            long plane = (long)x.T * x.H * x.W;
            for (long p = 0; p < plane; p++)
                for (int c = 0; c < 3; c++) pixels[c * plane + p] = Math.Clamp(channelsLast[p * 3 + c], 0f, 1f);
            return pixels;
        }
    }

    /// <summary>Pixels [3, T, H, W] in [0, 1] -> FSQ indices [t, h, w], on the device.</summary>
    public int[] Encode(ReadOnlySpan<float> pixels, int frames, int height, int width, IProgress<float>? progress = null)
    {
        if (!_model.HasEncoder) throw new InvalidDataException($"{_model.SourcePath} has no encoder weights");
        VideoTokenizer.LatentFrames(frames);
        long plane = (long)frames * height * width;
        if (pixels.Length != 3 * plane) throw new ArgumentException($"{pixels.Length} values for [3, {frames}, {height}, {width}] pixels");
        var channelsLast = new float[3 * plane];
        for (long p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++) channelsLast[p * 3 + c] = pixels[(int)(c * plane + p)];
        var x = NewVolume(frames, height, width, 3);
        x.View.CopyFromCPU(_stream, channelsLast);
        x = RunLayers(_model.EncoderLayers, x, progress);
        using (x)
        {
            int positions = x.T * x.H * x.W;
            var ids = Ids(positions);
            _kernels.FsqQuantize(_stream, new KernelConfig((positions + _device.Shape.GroupSize - 1) / _device.Shape.GroupSize, _device.Shape.GroupSize), x.View, ids, positions, _model.Levels);
            var result = new int[positions];
            ids.CopyToCPU(_stream, result);
            _stream.Synchronize();
            return result;
        }
    }

    public void Dispose()
    {
        foreach (var b in _weights) b.Dispose();
        _weights.Clear();
        foreach (var b in _free.Values.SelectMany(s => s)) b.Dispose();
        _free.Clear();
        foreach (var b in _idBuffers.Values) b.Dispose();
        _idBuffers.Clear();
        _stream?.Dispose();
        _device.Dispose();
    }
}
