using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Tokenizer;
using NbpEngine.Pipeline;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer;

namespace NbpEngine.Tests;

/// <summary>
/// A tokenizer file's own FSQ levels (fsq_levels metadata, a smaller codebook than TOKENIZER.md's 64000): the CPU
/// tokenizer and the device kernels quantise and decode with them, and files and pairings that cannot work are refused
/// before any work.
/// </summary>
public class TokenizerLevelsTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private string TokenizerWithLevels(string levels) =>
        EditedModel.Write(_dir.File($"tokenizer-{levels.Replace(',', '-')}.safetensors"), metadata: new() { [FsqLevels.MetadataKey] = levels },
            fixture: "tokenizer_model.safetensors");

    /// <summary>5 frames of 16x16: the fixture codes decoded by the fixture tokenizer (TOKENIZER.md's levels).</summary>
    private static float[] FixturePixels()
    {
        using var published = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors"));
        Assert.Equal(FsqLevels.Published, published.Levels);
        var (codes, _) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        return published.Decode(codes.Take(8).ToArray(), 2, 2, 2, threads: 2);
    }

    [Fact]
    public void CpuAndDeviceQuantiseAndDecodeWithTheFileLevels()
    {
        var pixels = FixturePixels();
        using var model = new VideoTokenizer(TokenizerWithLevels("3,3,3,3,3,3"));
        Assert.Equal(729, model.CodebookSize);
        var bounded = new float[8 * Fsq.Dimensions];
        var codes = model.Encode(pixels, 5, 16, 16, threads: 2, bounded);
        for (int p = 0; p < codes.Length; p++)
        {
            // 3 levels: bounded values in (-1, 1), digits -1..1, index = Σ (digit + 1)·3^d
            int expected = 0;
            for (int d = 0, basis = 1; d < Fsq.Dimensions; d++, basis *= 3)
            {
                Assert.InRange(bounded[p * 6 + d], -1f, 1f);
                expected += ((int)MathF.Round(bounded[p * 6 + d], MidpointRounding.ToEven) + 1) * basis;
            }
            Assert.Equal(expected, codes[p]);
        }
        Assert.True(codes.Distinct().Count() > 1, "the fixture frames should give more than one code");

        // the device on the first frame alone (one latent frame of 2x2: every emulated GPU thread is slow)
        using var device = new DeviceTokenizer(model, IlgpuDeviceKind.Cpu, tensorCores: false);
        var firstFrame = new float[3 * 16 * 16];
        for (int c = 0; c < 3; c++) Array.Copy(pixels, c * 5 * 256, firstFrame, c * 256, 256);
        var firstBounded = new float[4 * Fsq.Dimensions];
        var firstCodes = model.Encode(firstFrame, 1, 16, 16, threads: 2, firstBounded);
        Assert.Equal(codes.Take(4), firstCodes); // the encoder is causal: frame 1 alone gives the clip's first latent frame
        var onDevice = device.Encode(firstFrame, 1, 16, 16);
        for (int p = 0; p < 4; p++)
        {
            bool near = Enumerable.Range(0, Fsq.Dimensions).Any(d => Math.Abs(Math.Abs(firstBounded[p * 6 + d] - MathF.Floor(firstBounded[p * 6 + d])) - 0.5) < 1e-4);
            Assert.True(onDevice[p] == firstCodes[p] || near, $"code {p}: device {onDevice[p]}, cpu {firstCodes[p]}, not at a rounding boundary");
        }
        var latent = codes.Skip(4).Take(4).ToArray();
        var decodedOnCpu = model.Decode(latent, 1, 2, 2, threads: 2);
        var decodedOnDevice = device.Decode(latent, 1, 2, 2);
        Assert.Equal(decodedOnCpu.Length, decodedOnDevice.Length);
        double maxDiff = decodedOnCpu.Zip(decodedOnDevice).Max(p => Math.Abs(p.First - p.Second));
        // 1.7e-4 measured (fp32 sums in another order, through one frame's GroupNorms); a code read with other levels moves pixels by ~0.1
        Assert.True(maxDiff <= 1e-3, $"device decode differs from the CPU's by {maxDiff:E3}");
        // the code 728 exists for this file, 729 does not (on either side)
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Decode([729, 0, 0, 0], 1, 2, 2, threads: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.Decode([729, 0, 0, 0], 1, 2, 2));
        model.Decode([728, 0, 0, 0], 1, 2, 2, threads: 2);
    }

    [Theory]
    [InlineData("8,8,8", "expected 6 levels, found 3")]
    [InlineData("3,3,3,3,3,1", "each must be in [2, 256]")]
    [InlineData("three", "is not 6 comma-separated level counts")]
    public void BadLevelsMetadataIsRefusedWhenTheFileOpens(string levels, string expected)
    {
        string path = TokenizerWithLevels(levels);
        var e = Assert.Throws<InvalidDataException>(() => new VideoTokenizer(path));
        Assert.StartsWith($"{path}: metadata fsq_levels: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task AModelThatCanEmitCodesTheTokenizerLacksIsRefusedWhenThePipelineLoads()
    {
        string weights = TinyModels.FullVocabulary(_dir.File("full.safetensors")); // 64000 video ids
        var e = await Assert.ThrowsAsync<NbpInputException>(() =>
            NbpPipeline.LoadAsync(weights, TokenizerWithLevels("3,3,3,3,3,3"), new PipelineOptions { Backend = BackendKind.Cpu, Threads = 2 }));
        Assert.Contains("the tokenizer has 729 codes (FSQ levels 3,3,3,3,3,3), fewer than the model's video vocabulary 64000", e.Message);
    }
}
