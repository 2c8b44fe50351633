using System.CommandLine;
using NbpEngine.Cli.IO;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Tokenizer;
using NbpEngine.Kernels;
using NbpEngine.Tokenizer.Device;
using NbpEngine.Tokenizer.Video;
using Cpu = NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Cli;

/// <summary><c>nbp-run decode</c> and <c>nbp-run encode</c>: the video tokenizer on its own.</summary>
public static class TokenizerCommands
{
    public static Command Decode()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer safetensors (TOKENIZER.md keys)", Required = true };
        var tokens = new Option<string>("--tokens") { Description = "video codes 0..63999, whitespace-separated, t x h x w of them", Required = true };
        var output = new Option<string>("--out") { Description = "folder for PNG frames, or a .mp4/.gif/.apng file (PNG frames are written beside it too)", Required = true };
        var rawOut = new Option<string?>("--raw-out") { Description = "float32 [3, frames, H, W] in [0, 1] as .npy" };
        var latent = new Option<int>("--latent-size") { Description = "latent height = width (16 for 128x128 video)", DefaultValueFactory = _ => 16 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads (default: all cores)" };
        var fps = new Option<int>("--fps") { Description = "frame rate of a video output", DefaultValueFactory = _ => 8 };
        var backend = BackendOption();
        var conv = ConvOption();
        var command = new Command("decode", "FSQ codes -> frames (and a video file when ffmpeg is installed)") { tokenizer, tokens, output, rawOut, latent, threads, fps, backend, conv };
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            GenerateCommand.CheckThreads(parse.GetValue(threads));
            string?[] inputs = [parse.GetValue(tokenizer), parse.GetValue(tokens)];
            OutputChecks.Frames(parse.GetValue(output)!, parse.GetValue(fps), inputs);
            OutputChecks.Files(inputs, ("--raw-out", parse.GetValue(rawOut)));
            var codes = TokenFile.Read(parse.GetValue(tokens)!, MaxDecodeCodes, $" (decode takes at most {MaxDecodeCodes} codes)");
            int size = parse.GetValue(latent);
            if (size < 1 || codes.Length % (size * size) != 0)
                throw new CliInputException($"{parse.GetValue(tokens)}: {codes.Length} codes is not a whole number of {size}x{size} latent frames");
            using var model = new VideoTokenizer(parse.GetValue(tokenizer)!) { ConvAlgorithm = parse.GetValue(conv) };
            using var device = OpenDevice(model, parse.GetValue(backend)!);
            var (pixels, frames, height, width) = DecodeCodes(model, device, codes, size, parse.GetValue(threads));
            if (parse.GetValue(rawOut) is { } raw) NpyWriter.WriteFloat32(raw, pixels, 3, frames, height, width);
            WriteFrames(parse.GetValue(output)!, VideoIO.ToRgbFrames(pixels, frames, height, width), height, width, parse.GetValue(fps), null);
            return 0;
        }));
        return command;
    }

    public static Command Encode()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer safetensors (TOKENIZER.md keys)", Required = true };
        var input = new Option<string>("--input") { Description = "folder of PNG frames or a video file (via ffmpeg)", Required = true };
        var tokensOut = new Option<string>("--tokens-out") { Description = "file for the FSQ codes, one latent row per line", Required = true };
        var frames = new Option<int>("--frames") { Description = "frames to encode, 1 + 4n", DefaultValueFactory = _ => 17 };
        var size = new Option<int>("--size") { Description = "frame size after scaling the short side and centre-cropping", DefaultValueFactory = _ => 128 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads (default: all cores)" };
        var backend = BackendOption();
        var conv = ConvOption();
        var command = new Command("encode", "frames -> FSQ codes") { tokenizer, input, tokensOut, frames, size, threads, backend, conv };
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            GenerateCommand.CheckThreads(parse.GetValue(threads));
            OutputChecks.Files([parse.GetValue(tokenizer), parse.GetValue(input)], ("--tokens-out", parse.GetValue(tokensOut)));
            using var model = new VideoTokenizer(parse.GetValue(tokenizer)!) { ConvAlgorithm = parse.GetValue(conv) };
            using var device = OpenDevice(model, parse.GetValue(backend)!);
            var (codes, _) = EncodeInput(model, device, parse.GetValue(input)!, parse.GetValue(frames), parse.GetValue(size), parse.GetValue(threads));
            TokenFile.Write(parse.GetValue(tokensOut)!, codes, parse.GetValue(size) / VideoTokenizer.SpatialFactor);
            Console.Error.WriteLine($"nbp-run: {codes.Length} codes -> {parse.GetValue(tokensOut)}");
            return 0;
        }));
        return command;
    }

    /// <summary>Most codes one decode takes: 64 latent frames of 64 x 64 (a 512 x 512, 253-frame video).</summary>
    private const int MaxDecodeCodes = 64 * 64 * 64;

    private static Option<string> BackendOption()
    {
        var backend = new Option<string>("--backend") { Description = "cpu | cuda | ilgpu-cpu | auto (CUDA when present, else cpu)", DefaultValueFactory = _ => "auto" };
        backend.AcceptOnlyFromAmong("cpu", "cuda", "ilgpu-cpu", "auto");
        return backend;
    }

    /// <summary>The CPU tokenizer's conv algorithm (the device kernels have one: implicit GEMM).</summary>
    private static Option<ConvAlgorithm> ConvOption()
    {
        var conv = new Option<ConvAlgorithm>("--conv")
        {
            Description = "CPU 3x3x3 convs: auto (Winograd F(4x4,3x3) from 32x32 frames up) | im2col | winograd",
            DefaultValueFactory = _ => ConvAlgorithm.Auto,
        };
        conv.AcceptOnlyFromAmong("auto", "im2col", "winograd");
        return conv;
    }

    /// <summary>The ILGPU tokenizer for cuda / ilgpu-cpu (and auto with a GPU); null means the CPU tokenizer.</summary>
    internal static DeviceTokenizer? OpenDevice(VideoTokenizer model, string backend) => backend switch
    {
        "cuda" => new DeviceTokenizer(model, IlgpuDeviceKind.Cuda),
        "ilgpu-cpu" => new DeviceTokenizer(model, IlgpuDeviceKind.Cpu),
        "auto" when IlgpuDevice.CudaAvailable() => new DeviceTokenizer(model, IlgpuDeviceKind.Cuda),
        _ => null,
    };

    /// <summary>Reads <paramref name="frames"/> frames and encodes them; also returns them as RGB bytes.</summary>
    internal static (int[] Codes, byte[][] Frames) EncodeInput(VideoTokenizer model, DeviceTokenizer? device, string input, int frames, int size, int? threads)
    {
        if (!ModelConfig.IsValidResolution(size))
            throw new CliInputException($"--size must be a multiple of {VideoTokenizer.SpatialFactor} in [{VideoTokenizer.SpatialFactor}, {ModelConfig.MaxResolution}], found {size}");
        VideoTokenizer.LatentFrames(frames);
        var (pixels, read) = VideoIO.Read(input, size, frames);
        if (read != frames) throw new CliInputException($"{input}: {read} frames available, {frames} needed");
        Report.Detail($"nbp-run: encoding {frames} frames of {size}x{size} from {input}");
        if (device is null) Report.Detail($"nbp-run: CPU weight preparation took {model.PrepareEncode(frames, size, size):F3} s");
        Cpu.Volume.ResetPeak();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var codes = device is not null
            ? device.Encode(pixels, frames, size, size, Report.Progress("encode"))
            : model.Encode(pixels, frames, size, size, threads ?? Environment.ProcessorCount, progress: Report.Progress("encode"));
        Report.Detail($"nbp-run: encode on {device?.Name ?? "cpu"} took {clock.Elapsed.TotalSeconds:F3} s, activations peak {Cpu.Volume.PeakBytes / (1 << 20)} MiB"
            + CpuDetails(model, device));
        return (codes, VideoIO.ToRgbFrames(pixels, frames, size, size));
    }

    internal static (float[] Pixels, int Frames, int Height, int Width) DecodeCodes(VideoTokenizer model, DeviceTokenizer? device, int[] codes, int latentSize, int? threads)
    {
        int latentFrames = codes.Length / (latentSize * latentSize);
        int frames = 4 * latentFrames - 3, size = latentSize * VideoTokenizer.SpatialFactor;
        Report.Detail($"nbp-run: decoding {latentFrames} latent frames to {frames} frames of {size}x{size}");
        if (device is null) Report.Detail($"nbp-run: CPU weight preparation took {model.PrepareDecode(latentFrames, latentSize, latentSize):F3} s");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Cpu.Volume.ResetPeak();
        var pixels = device is not null
            ? device.Decode(codes, latentFrames, latentSize, latentSize, Report.Progress("decode"))
            : model.Decode(codes, latentFrames, latentSize, latentSize, threads ?? Environment.ProcessorCount, Report.Progress("decode"));
        Report.Detail($"nbp-run: decode on {device?.Name ?? "cpu"} took {clock.Elapsed.TotalSeconds:F3} s, activations peak {Cpu.Volume.PeakBytes / (1 << 20)} MiB"
            + CpuDetails(model, device));
        return (pixels, frames, size, size);
    }

    /// <summary>The CPU tokenizer's conv algorithm and weight copies, for the timing lines (nothing on a device).</summary>
    private static string CpuDetails(VideoTokenizer model, DeviceTokenizer? device) =>
        device is null ? $", conv {model.ConvAlgorithm.ToString().ToLowerInvariant()}, CPU weight copies {model.CpuWeightBytes / (1 << 20)} MiB" : "";

    /// <summary>
    /// PNG frames always; a video file too when the output names one (and ffmpeg exists); strip.png with
    /// the real conditioning frames, when given, followed by the generated ones.
    /// </summary>
    internal static void WriteFrames(string output, byte[][] frames, int height, int width, int fps, byte[][]? conditioning)
    {
        string folder = OutputChecks.FramesFolder(output);
        bool video = folder != output;
        var strip = conditioning is null ? frames : conditioning.Concat(frames.Skip(conditioning.Length)).ToArray();
        // the folder appears whole or not at all
        OutputPath.WriteFolderAtomically(folder, temporary =>
        {
            VideoIO.WritePngFolder(temporary, frames, height, width);
            VideoIO.WriteStrip(Path.Combine(temporary, "strip.png"), strip, height, width);
        });
        Console.Error.WriteLine($"nbp-run: {frames.Length} PNG frames and strip.png -> {folder}");
        if (!video) return;
        if (!VideoIO.FfmpegAvailable)
        {
            Console.Error.WriteLine($"nbp-run: {output} not written: {VideoIO.FfmpegMissing}");
            return;
        }
        VideoIO.WriteVideo(output, frames, height, width, fps);
        Console.Error.WriteLine($"nbp-run: video -> {output}");
    }
}
