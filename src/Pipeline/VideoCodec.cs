using System.Diagnostics;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Tokenizer;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tokenizer;
using Cpu = NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Pipeline;

/// <summary>What one encode or decode cost: the CPU's one-time weight preparation apart from the pass itself.</summary>
public readonly record struct CodecTiming(double Seconds, double PrepareSeconds, long ActivationPeakBytes);

/// <summary>
/// The video tokenizer where the transformer runs: the ILGPU kernels for CUDA / ilgpu-cpu (and Auto with a
/// GPU), else the CPU layers. One place decides, so a CLI command, nbp-bench and a host get the same choice.
/// </summary>
public sealed class VideoCodec : IDisposable
{
    private readonly DeviceTokenizer? _device;

    public VideoTokenizer Model { get; }
    /// <summary>cpu, cuda or ilgpu-cpu.</summary>
    public string BackendName => _device?.Name ?? "cpu";
    public bool OnDevice => _device is not null;

    private VideoCodec(VideoTokenizer model, DeviceTokenizer? device)
    {
        Model = model;
        _device = device;
    }

    /// <summary>Loads and checks the tokenizer's weights (TOKENIZER.md) and uploads them when the backend is a device.</summary>
    /// <param name="tensorCores">device convs on tensor cores; null: on for CUDA, off for the ILGPU CPU accelerator</param>
    public static VideoCodec Open(string path, BackendKind backend, ConvAlgorithm conv = ConvAlgorithm.Auto, bool? tensorCores = null)
    {
        var model = new VideoTokenizer(path) { ConvAlgorithm = conv };
        try
        {
            bool device = backend is BackendKind.Cuda or BackendKind.IlgpuCpu || (backend == BackendKind.Auto && IlgpuDevice.CudaAvailable());
            var kind = backend == BackendKind.IlgpuCpu ? IlgpuDeviceKind.Cpu : IlgpuDeviceKind.Cuda;
            return new VideoCodec(model, device ? new DeviceTokenizer(model, kind, tensorCores) : null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Frames to FSQ codes, [latent frames, H/8, W/8].</summary>
    public (int[] Codes, CodecTiming Timing) Encode(VideoClip clip, int threads, IProgress<float>? progress = null)
    {
        double prepare = _device is null ? Model.PrepareEncode(clip.Frames, clip.Height, clip.Width) : 0;
        Cpu.Volume.ResetPeak();
        var clock = Stopwatch.StartNew();
        var codes = _device is not null
            ? _device.Encode(clip.Pixels, clip.Frames, clip.Height, clip.Width, progress)
            : Model.Encode(clip.Pixels, clip.Frames, clip.Height, clip.Width, threads, progress: progress);
        return (codes, new CodecTiming(clock.Elapsed.TotalSeconds, prepare, Cpu.Volume.PeakBytes));
    }

    /// <summary>FSQ codes (whole latent frames of <paramref name="latentSize"/>²) to 1 + 4(n-1) frames.</summary>
    public (VideoClip Clip, CodecTiming Timing) Decode(ReadOnlySpan<int> codes, int latentSize, int threads, IProgress<float>? progress = null)
    {
        int perFrame = latentSize * latentSize;
        if (latentSize < 1 || codes.Length == 0 || codes.Length % perFrame != 0)
            throw new ArgumentException($"{codes.Length} codes is not a whole number of {latentSize}x{latentSize} latent frames", nameof(codes));
        int latentFrames = codes.Length / perFrame, frames = 4 * latentFrames - 3, size = latentSize * VideoTokenizer.SpatialFactor;
        double prepare = _device is null ? Model.PrepareDecode(latentFrames, latentSize, latentSize) : 0;
        Cpu.Volume.ResetPeak();
        var clock = Stopwatch.StartNew();
        var pixels = _device is not null
            ? _device.Decode(codes, latentFrames, latentSize, latentSize, progress)
            : Model.Decode(codes, latentFrames, latentSize, latentSize, threads, progress);
        return (new VideoClip(pixels, frames, size, size), new CodecTiming(clock.Elapsed.TotalSeconds, prepare, Cpu.Volume.PeakBytes));
    }

    /// <summary>The conv algorithm and weight copies of the CPU tokenizer, for timing lines (empty on a device).</summary>
    public string CpuDetails => _device is null
        ? $"conv {Model.ConvAlgorithm.ToString().ToLowerInvariant()}, CPU weight copies {Model.CpuWeightBytes / (1 << 20)} MiB"
        : "";

    public void Dispose()
    {
        _device?.Dispose();
        Model.Dispose();
    }
}
