using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Tokenizer;

using NbpEngine.Tokenizer.Cpu;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>
/// The tokenizer's layer list run with the ILGPU kernels (src/Kernels/Tokenizer) on CUDA or the CPU
/// accelerator. Weights are uploaded once from a loaded <see cref="VideoTokenizer"/>; activations are
/// channels-last device buffers freed as soon as the next layer has consumed them, like the CPU path.
/// </summary>
public sealed class DeviceTokenizer : IDisposable
{
    private readonly VideoTokenizer _model;
    private readonly IlgpuDevice _device;
    private readonly AcceleratorStream _stream;
    private readonly TokenizerKernelSet _kernels;
    private readonly Dictionary<object, (ArrayView<float> A, ArrayView<float> B, ArrayView<float> C)> _params = new(ReferenceEqualityComparer.Instance);
    private readonly List<MemoryBuffer> _weights = new();

    public string Name => _device.Kind == IlgpuDeviceKind.Cuda ? "cuda" : "ilgpu-cpu";

    public DeviceTokenizer(VideoTokenizer model, IlgpuDeviceKind kind)
    {
        _model = model;
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

    private void UploadConv(Conv3d conv) => _params[conv] = (Upload(conv.Weight), Upload(conv.Bias), default);

    private void UploadNorm(GroupNormSwish norm) =>
        _params[norm] = (Upload(norm.Gamma), Upload(norm.Beta), norm.SwishBeta.IsEmpty ? Upload(new float[1]) : Upload(norm.SwishBeta));

    private void Conv(Conv3d conv, DeviceVolume x, DeviceVolume y, bool accumulate)
    {
        var (weight, bias, _) = _params[conv];
        _kernels.Conv3d(_stream, TokenizerKernelSet.ConvGrid(y.T * y.H * y.W, conv.OutChannels, _device.Shape.GroupSize), x.View, weight, bias, y.View,
            new Conv3dArgs
            {
                T = x.T, H = x.H, W = x.W, Cin = x.C, To = y.T, Ho = y.H, Wo = y.W, Cout = y.C,
                KT = conv.KT, KH = conv.KH, KW = conv.KW, ST = conv.Stride.T, SH = conv.Stride.H, SW = conv.Stride.W, Accumulate = accumulate ? 1 : 0,
            });
    }

    private DeviceVolume ConvNew(Conv3d conv, DeviceVolume x)
    {
        int t = (x.T + 2 * (conv.KT / 2) - conv.KT) / conv.Stride.T + 1;
        int h = (x.H + 2 * (conv.KH / 2) - conv.KH) / conv.Stride.H + 1;
        int w = (x.W + 2 * (conv.KW / 2) - conv.KW) / conv.Stride.W + 1;
        var y = NewVolume(t, h, w, conv.OutChannels);
        Conv(conv, x, y, accumulate: false);
        return y;
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
            case Depth2SpaceLayer d:
            {
                var (bt, bh, bw) = d.Factors;
                var y = NewVolume(x.T * bt - (bt - 1), x.H * bh, x.W * bw, x.C / (bt * bh * bw));
                _kernels.Depth2Space(_stream, new KernelConfig((int)Math.Min(4096, (y.Length + _device.Shape.GroupSize - 1) / _device.Shape.GroupSize), _device.Shape.GroupSize),
                    x.View, y.View, x.Args, bt, bh, bw);
                x.Dispose();
                return y;
            }
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
            if ((uint)index >= Fsq.CodebookSize) throw new ArgumentOutOfRangeException(nameof(indices), index, $"FSQ index must be in [0, {Fsq.CodebookSize})");
        var ids = Ids(positions);
        ids.CopyFromCPU(_stream, indices);
        var x = NewVolume(latentFrames, latentHeight, latentWidth, Fsq.Dimensions);
        _kernels.FsqCodes(_stream, new KernelConfig((positions + _device.Shape.GroupSize - 1) / _device.Shape.GroupSize, _device.Shape.GroupSize), ids, x.View, positions);
        var layers = _model.DecoderLayers;
        for (int i = 0; i < layers.Count; i++)
        {
            x = Run(layers[i], x);
            progress?.Report((i + 1f) / layers.Count);
        }
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
        var layers = _model.EncoderLayers;
        for (int i = 0; i < layers.Count; i++)
        {
            x = Run(layers[i], x);
            progress?.Report((i + 1f) / layers.Count);
        }
        using (x)
        {
            int positions = x.T * x.H * x.W;
            var ids = Ids(positions);
            _kernels.FsqQuantize(_stream, new KernelConfig((positions + _device.Shape.GroupSize - 1) / _device.Shape.GroupSize, _device.Shape.GroupSize), x.View, ids, positions);
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
