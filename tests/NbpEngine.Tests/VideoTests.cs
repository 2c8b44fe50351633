using System.Diagnostics;
using NbpEngine.Cli;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Tests;

/// <summary>A [Fact] that is skipped, with the reason, when ffmpeg is not installed.</summary>
public sealed class FactRequiringFfmpegAttribute : FactAttribute
{
    public FactRequiringFfmpegAttribute()
    {
        if (!VideoIO.FfmpegAvailable) Skip = "ffmpeg is not installed (apt-get install -y ffmpeg); the MP4 check needs it";
    }
}

/// <summary>PNG I/O, nbp-run decode / encode, and frame prediction from frames to a video.</summary>
[Collection(nameof(ConsoleCollection))]
public class VideoTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static Task<(int Code, string Stderr)> Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void PngRoundTrips()
    {
        var rng = new Random(1);
        var rgb = new byte[13 * 7 * 3];
        rng.NextBytes(rgb);
        Png.WriteRgb(_dir.File("a.png"), rgb, 13, 7);
        var (back, w, h) = Png.ReadRgb(_dir.File("a.png"));
        Assert.Equal((13, 7), (w, h));
        Assert.Equal(rgb, back);
    }

    [Fact]
    public void APngWithABadSignatureIsNamed()
    {
        File.WriteAllBytes(_dir.File("bad.png"), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadRgb(_dir.File("bad.png")));
        Assert.Contains("bad.png", e.Message);
    }

    [Fact]
    public async Task DecodeCommandWritesFramesAndRawPixelsMatchingPyTorch()
    {
        var (codes, _) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        File.WriteAllText(_dir.File("codes.txt"), string.Join(' ', codes));
        var (code, stderr) = await Run("decode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--tokens", _dir.File("codes.txt"),
            "--latent-size", "4", "--out", _dir.File("frames"), "--raw-out", _dir.File("raw.npy"), "--threads", "2");
        Assert.True(code == 0, stderr);
        Assert.Equal(17, Directory.GetFiles(_dir.File("frames"), "frame_*.png").Length);
        Assert.True(File.Exists(Path.Combine(_dir.File("frames"), "strip.png")));
        var (raw, shape) = Fixtures.Npy(_dir.File("raw.npy"));
        var (expected, _) = Fixtures.Npy(Fixtures.PathOf("tokenizer_decoded.npy"));
        Assert.Equal(new[] { 3, 17, 32, 32 }, shape);
        Assert.True(raw.Zip(expected).Max(p => Math.Abs(p.First - p.Second)) <= 1e-4);
    }

    [Fact]
    public async Task EncodeCommandReadsAPngFolder()
    {
        WriteFixtureFrames(_dir.File("in"), 17);
        var (code, stderr) = await Run("encode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--input", _dir.File("in"),
            "--tokens-out", _dir.File("codes.txt"), "--size", "32", "--threads", "2");
        Assert.True(code == 0, stderr);
        var codes = Fixtures.Tokens(_dir.File("codes.txt"));
        Assert.Equal(5 * 4 * 4, codes.Length);
        // the same frames through the API give the same codes
        using var tokenizer = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors"));
        var (pixels, frames) = VideoIO.Read(_dir.File("in"), 32, 17);
        Assert.Equal(tokenizer.Encode(pixels, frames, 32, 32, 2), codes);
    }

    [Fact]
    public async Task EncodeCommandRefusesAFrameCountThatIsNotOnePlusFourN()
    {
        WriteFixtureFrames(_dir.File("in"), 17);
        var (code, stderr) = await Run("encode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--input", _dir.File("in"),
            "--tokens-out", _dir.File("codes.txt"), "--size", "32", "--frames", "6");
        Assert.Equal(2, code);
        Assert.Contains("1 + 4n", stderr);
    }

    [Theory]
    [InlineData(5, 5)]
    [InlineData(8, 5)]
    [InlineData(9, 9)]
    public async Task EncodeTakesTheMostFramesThatFitOnePlusFourNByDefault(int available, int encoded)
    {
        WriteFixtureFrames(_dir.File("in"), available);
        var (code, stderr) = await Run("encode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--input", _dir.File("in"),
            "--tokens-out", _dir.File("codes.txt"), "--size", "32", "--threads", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains($"{encoded} frames -> ", stderr);
        Assert.Equal((1 + (encoded - 1) / 4) * 4 * 4, Fixtures.Tokens(_dir.File("codes.txt")).Length);
        Assert.StartsWith("# nbp-tokens: video-codes\n", File.ReadAllText(_dir.File("codes.txt")));
    }

    [Fact]
    public async Task EncodeGenerateAndDecodeChainWithoutEditingFiles()
    {
        // frames -> codes -> one predicted latent frame -> frames, each command reading the previous one's file as written
        WriteFixtureFrames(_dir.File("clip"), 5, size: 64);
        string tokenizer = Fixtures.PathOf("tokenizer_model.safetensors");
        var (code, stderr) = await Run("encode", "--tokenizer", tokenizer, "-i", _dir.File("clip"), "--tokens-out", _dir.File("codes.txt"), "--size", "64", "-q");
        Assert.True(code == 0, stderr);
        (code, stderr) = await Run("-m", TinyFullVocabularyModel(), "--prompt-tokens", _dir.File("codes.txt"), "--tokens-out", _dir.File("gen.txt"),
            "--steps", "4", "-s", "7", "-t", "2", "-q");
        Assert.True(code == 0, stderr);
        Assert.StartsWith("# nbp-tokens: model-ids, video-offset 0\n", File.ReadAllText(_dir.File("gen.txt")));
        Assert.Equal(64, Fixtures.Tokens(_dir.File("gen.txt")).Length);
        (code, stderr) = await Run("decode", "--tokenizer", tokenizer, "--tokens", _dir.File("gen.txt"), "--latent-size", "8", "-o", _dir.File("frames"), "-q");
        Assert.True(code == 0, stderr);
        Assert.Single(Directory.GetFiles(_dir.File("frames"), "frame_*.png"));
    }

    [Fact]
    public async Task DecodeRefusesCodesOutsideTheCodebook()
    {
        File.WriteAllText(_dir.File("codes.txt"), "# nbp-tokens: video-codes\n" + string.Join(' ', Enumerable.Repeat(7, 15)) + " 64000\n");
        var (code, stderr) = await Run("decode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--tokens", _dir.File("codes.txt"),
            "--latent-size", "4", "--out", _dir.File("frames"));
        Assert.Equal(2, code);
        Assert.Contains("code 15 is 64000, outside the tokenizer's codebook [0, 64000)", stderr);
    }

    /// <summary>The fixture video, quantised to 8 bits, as PNG frames.</summary>
    internal static void WriteFixtureFrames(string folder, int count, int size = 32)
    {
        var (video, shape) = Fixtures.Npy(Fixtures.PathOf("tokenizer_video.npy"));
        var frames = VideoIO.ToRgbFrames(video, shape[1], shape[2], shape[3]);
        if (size != shape[2])
            frames = frames.Select(f => VideoIO.ScaleAndCrop(f, shape[3], shape[2], size)).ToArray();
        VideoIO.WritePngFolder(folder, frames.Take(count).ToArray(), size, size);
    }

    private string TinyFullVocabularyModel() => TinyModels.FullVocabulary(_dir.File("tiny-64k.safetensors"));

    [Fact]
    public async Task TooFewStepsForOnePredictedFrameAreRefusedBeforeGenerating()
    {
        WriteFixtureFrames(_dir.File("clip"), 5, size: 64);
        var (code, stderr) = await Run("--weights", TinyFullVocabularyModel(), "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"),
            "--input", _dir.File("clip"), "--output", _dir.File("prediction"), "--steps", "2", "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("2 steps generate 32 tokens, less than one latent frame (64): no frame would be predicted", stderr);
        Assert.False(Directory.Exists(_dir.File("prediction")));
    }

    [Fact]
    public async Task FramePredictionFromPngFramesWritesFramesAndAStrip()
    {
        WriteFixtureFrames(_dir.File("clip"), 5, size: 64);
        var (code, stderr) = await Run("--weights", TinyFullVocabularyModel(), "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"),
            "--input", _dir.File("clip"), "--output", _dir.File("prediction"), "--threads", "2", "--quiet", "--seed", "3");
        Assert.True(code == 0, stderr);
        Assert.Contains("12 steps", stderr);
        // --quiet: no percent, preparation or per-phase detail lines from encode/decode (there were 22)
        Assert.DoesNotContain("%", stderr);
        Assert.DoesNotContain("decode on", stderr);
        Assert.True(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length <= 6, stderr);
        Assert.Equal(17, Directory.GetFiles(_dir.File("prediction"), "frame_*.png").Length);
        var (_, w, h) = Png.ReadRgb(Path.Combine(_dir.File("prediction"), "strip.png"));
        Assert.Equal((64 * 17, 64), (w, h)); // 5 real conditioning frames + 12 predicted
    }

    [FactRequiringFfmpeg]
    public async Task FramePredictionWritesAPlayableMp4()
    {
        WriteFixtureFrames(_dir.File("clip"), 5, size: 64);
        string mp4 = _dir.File("prediction.mp4");
        var (code, stderr) = await Run("--weights", TinyFullVocabularyModel(), "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"),
            "--input", _dir.File("clip"), "--output", mp4, "--threads", "2", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(17, Directory.GetFiles(mp4 + ".frames", "frame_*.png").Length); // PNG frames always
        var probe = Process.Start(new ProcessStartInfo("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", mp4]) { RedirectStandardOutput = true })!;
        string info = (await probe.StandardOutput.ReadToEndAsync()).Trim();
        await probe.WaitForExitAsync();
        Assert.Equal(0, probe.ExitCode);
        Assert.Equal("h264,64,64,17", info);
    }
}
