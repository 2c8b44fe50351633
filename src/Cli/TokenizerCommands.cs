using System.CommandLine;
using NbpEngine.Cli.IO;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Cli.Options;
using NbpEngine.Pipeline;
using NbpEngine.Tokenizer.Video;
using NbpEngine.Core;

namespace NbpEngine.Cli;

/// <summary><c>nbp-run decode</c> and <c>nbp-run encode</c>: the video tokenizer on its own.</summary>
public static class TokenizerCommands
{
    public static Command Decode()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer safetensors (TOKENIZER.md keys)", Required = true };
        var tokens = new Option<string>("--tokens") { Description = "codes 0..63999 ('encode' output) or generated ids ('nbp-run --tokens-out' output, shifted back), t x h x w of them", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "folder for PNG frames, or a .mp4/.gif/.apng file (PNG frames are written beside it too)", Required = true };
        var rawOut = new Option<string?>("--raw-out") { Description = "float32 [3, frames, H, W] in [0, 1] as .npy" };
        var latent = new Option<int>("--latent-size") { Description = "latent height = width (16 for 128x128 video)", DefaultValueFactory = _ => 16 };
        var threads = SharedOptions.Threads();
        var fps = SharedOptions.Fps();
        var backend = SharedOptions.Backend();
        var conv = SharedOptions.Conv();
        var tensorCores = SharedOptions.TensorCores();
        var command = new Command("decode", "FSQ codes -> frames (and a video file when ffmpeg is installed)") { tokenizer, tokens, output, rawOut, latent, threads, fps, backend, conv, tensorCores.On, tensorCores.Off };
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            GenerateCommand.CheckThreads(parse.GetValue(threads));
            string?[] inputs = [parse.GetValue(tokenizer), parse.GetValue(tokens)];
            OutputChecks.Frames(parse.GetValue(output)!, parse.GetValue(fps), inputs);
            OutputChecks.Files(inputs, ("--raw-out", parse.GetValue(rawOut)));
            // the tokenizer first: its FSQ levels say which codes exist
            using var codec = VideoCodec.Open(parse.GetValue(tokenizer)!, SharedOptions.BackendKindOf(parse.GetValue(backend)), parse.GetValue(conv), SharedOptions.TensorCoresOf(parse, tensorCores));
            if (!codec.Model.HasDecoder) throw new CliInputException($"{parse.GetValue(tokenizer)}: no decoder weights ('decoder_layers.*'), so it cannot decode");
            var (codes, clamped) = TokenFile.ReadVideoCodes(parse.GetValue(tokens)!, MaxDecodeCodes, codec.Model.CodebookSize, $" (decode takes at most {MaxDecodeCodes} codes)");
            if (clamped > 0) Console.Error.WriteLine($"nbp-run: {clamped} generated ids were not video codes and were clamped into the codebook (MODEL.md §3)");
            int size = parse.GetValue(latent);
            if (size < 1 || size > ModelConfig.MaxResolution / ModelConfig.SpatialFactor || codes.Length % (size * size) != 0)
                throw new CliInputException($"{parse.GetValue(tokens)}: {codes.Length} codes is not a whole number of {size}x{size} latent frames");
            int latentFrames = codes.Length / (size * size);
            Report.Detail($"nbp-run: decoding {latentFrames} latent frames to {4 * latentFrames - 3} frames of {size * ModelConfig.SpatialFactor}x{size * ModelConfig.SpatialFactor} on {codec.BackendName}");
            var (clip, timing) = Report.Run(PipelinePhase.Decode, progress => codec.Decode(codes, size, parse.GetValue(threads) ?? Environment.ProcessorCount, progress));
            Report.Detail($"nbp-run: decode took {timing.Seconds:F3} s{GenerateCommand.CodecDetails(codec, timing)}");
            if (parse.GetValue(rawOut) is { } raw) NpyWriter.WriteFloat32(raw, clip.Pixels, 3, clip.Frames, clip.Height, clip.Width);
            WriteFrames(parse.GetValue(output)!, clip.ToRgbFrames(), clip.Height, clip.Width, parse.GetValue(fps), null);
            return 0;
        }));
        return command;
    }

    public static Command Encode()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer safetensors (TOKENIZER.md keys)", Required = true };
        var input = new Option<string>("--input", "-i") { Description = "folder of PNG frames or a video file (via ffmpeg)", Required = true };
        var tokensOut = new Option<string>("--tokens-out") { Description = "file for the FSQ codes, one latent row per line; 'nbp-run --prompt-tokens' reads it as is", Required = true };
        var frames = new Option<int?>("--frames") { Description = "frames to encode, 1 + 4n (default: the most the input has that fit 1 + 4n)" };
        var size = new Option<int>("--size") { Description = "frame size after scaling the short side and centre-cropping", DefaultValueFactory = _ => 128 };
        var threads = SharedOptions.Threads();
        var backend = SharedOptions.Backend();
        var conv = SharedOptions.Conv();
        var tensorCores = SharedOptions.TensorCores();
        var command = new Command("encode", "frames -> FSQ codes") { tokenizer, input, tokensOut, frames, size, threads, backend, conv, tensorCores.On, tensorCores.Off };
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            GenerateCommand.CheckThreads(parse.GetValue(threads));
            OutputChecks.Files([parse.GetValue(tokenizer), parse.GetValue(input)], ("--tokens-out", parse.GetValue(tokensOut)));
            int side = parse.GetValue(size);
            if (!ModelConfig.IsValidResolution(side))
                throw new CliInputException($"--size must be a multiple of {ModelConfig.SpatialFactor} in [{ModelConfig.SpatialFactor}, {ModelConfig.MaxResolution}], found {side}");
            if (parse.GetValue(frames) is { } n && (n < 1 || (n - 1) % 4 != 0 || n > ModelConfig.MaxSequenceLength))
                throw new CliInputException($"--frames must be 1 + 4n, at most {ModelConfig.MaxSequenceLength}, found {n}");
            string path = parse.GetValue(input)!;
            if (!File.Exists(path) && !Directory.Exists(path)) throw new CliInputException($"{path}: --input not found (a PNG folder or a video file)");
            using var codec = VideoCodec.Open(parse.GetValue(tokenizer)!, SharedOptions.BackendKindOf(parse.GetValue(backend)), parse.GetValue(conv), SharedOptions.TensorCoresOf(parse, tensorCores));
            if (!codec.Model.HasEncoder) throw new CliInputException($"{parse.GetValue(tokenizer)}: no encoder weights ('encoder_layers.*'), so it cannot encode");
            var clip = VideoClip.Read(path, side, parse.GetValue(frames));
            Report.Detail($"nbp-run: encoding {clip.Frames} frames of {side}x{side} from {path} on {codec.BackendName}");
            var (codes, timing) = Report.Run(PipelinePhase.Encode, progress => codec.Encode(clip, parse.GetValue(threads) ?? Environment.ProcessorCount, progress));
            Report.Detail($"nbp-run: encode took {timing.Seconds:F3} s{GenerateCommand.CodecDetails(codec, timing)}");
            TokenFile.Write(parse.GetValue(tokensOut)!, codes, side / ModelConfig.SpatialFactor, TokenKind.VideoCodes);
            Console.Error.WriteLine($"nbp-run: {clip.Frames} frames -> {codes.Length} codes -> {parse.GetValue(tokensOut)}");
            return 0;
        }));
        return command;
    }

    /// <summary>Most codes one decode takes: 64 latent frames of 64 x 64 (a 512 x 512, 253-frame video).</summary>
    private const int MaxDecodeCodes = 64 * 64 * 64;

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
        if (VideoIO.NeedsFfmpeg(output) && !VideoIO.FfmpegAvailable)
        {
            Console.Error.WriteLine($"nbp-run: {output} not written: {VideoIO.FfmpegMissing}");
            return;
        }
        VideoIO.WriteVideo(output, frames, height, width, fps);
        Console.Error.WriteLine($"nbp-run: video -> {output}");
    }
}
