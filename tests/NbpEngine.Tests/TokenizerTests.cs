using NbpEngine.Core;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer;
using Xunit.Abstractions;

namespace NbpEngine.Tests;

/// <summary>
/// The CPU tokenizer against the PyTorch reference (tools/reference/make_tokenizer_fixtures.py): a narrow
/// tokenizer with the full layer list, 17 frames of 32x32. Decoded pixels within 1e-4 max abs error;
/// encoded codes exact except where the reference's pre-rounding value is within 1e-4 of a boundary.
/// </summary>
public class TokenizerTests(ITestOutputHelper output)
{
    private const string Regenerate = "/usr/bin/python3 tools/reference/make_tokenizer_fixtures.py";

    [Theory]
    [InlineData(ConvAlgorithm.Auto)]
    [InlineData(ConvAlgorithm.Im2Col)]
    [InlineData(ConvAlgorithm.Winograd)]
    public void DecodedPixelsMatchPyTorch(ConvAlgorithm algorithm)
    {
        using var tokenizer = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors")) { ConvAlgorithm = algorithm };
        var (codes, codeShape) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        var (expected, shape) = Fixtures.Npy(Fixtures.PathOf("tokenizer_decoded.npy"));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var pixels = tokenizer.Decode(codes, codeShape[0], codeShape[1], codeShape[2], threads: 2);
        output.WriteLine($"decode [{string.Join(",", codeShape)}] -> [{string.Join(",", shape)}] in {clock.ElapsedMilliseconds} ms");
        Assert.Equal(expected.Length, pixels.Length);
        double maxDiff = 0;
        int worst = 0;
        for (int i = 0; i < expected.Length; i++)
            if (Math.Abs(pixels[i] - expected[i]) > maxDiff) { maxDiff = Math.Abs(pixels[i] - expected[i]); worst = i; }
        output.WriteLine($"max |diff| {maxDiff:E3} at {worst}");
        Assert.True(maxDiff <= 1e-4, $"decoded pixels: max |diff| {maxDiff:E3} at {worst} ({pixels[worst]} vs {expected[worst]}); regenerate with: {Regenerate}");
    }

    [Theory]
    [InlineData(ConvAlgorithm.Im2Col)]
    [InlineData(ConvAlgorithm.Winograd)]
    public void EncodedCodesMatchPyTorch(ConvAlgorithm algorithm)
    {
        using var tokenizer = new VideoTokenizer(Fixtures.PathOf("tokenizer_model.safetensors")) { ConvAlgorithm = algorithm };
        var (video, shape) = Fixtures.Npy(Fixtures.PathOf("tokenizer_video.npy"));
        var (expected, codeShape) = Fixtures.NpyInt(Fixtures.PathOf("tokenizer_codes.npy"));
        var (referenceBounded, _) = Fixtures.Npy(Fixtures.PathOf("tokenizer_bounded.npy")); // [6, t, h, w]
        var bounded = new float[expected.Length * Fsq.Dimensions];
        var codes = tokenizer.Encode(video, shape[1], shape[2], shape[3], threads: 2, bounded);
        Assert.Equal(expected.Length, codes.Length);
        int exact = 0, nearBoundary = 0;
        double maxBoundedDiff = 0;
        for (int p = 0; p < codes.Length; p++)
        {
            bool near = false;
            for (int d = 0; d < Fsq.Dimensions; d++)
            {
                float reference = referenceBounded[d * codes.Length + p];
                maxBoundedDiff = Math.Max(maxBoundedDiff, Math.Abs(bounded[p * Fsq.Dimensions + d] - reference));
                near |= Math.Abs(Math.Abs(reference - MathF.Floor(reference)) - 0.5) < 1e-4;
            }
            if (codes[p] == expected[p]) exact++;
            else if (near) nearBoundary++;
            else Assert.Fail($"code {p}: {codes[p]} vs reference {expected[p]} and no dimension is within 1e-4 of a rounding boundary; regenerate with: {Regenerate}");
        }
        output.WriteLine($"{exact}/{codes.Length} codes exact, {nearBoundary} differ at a rounding boundary; pre-rounding max |diff| {maxBoundedDiff:E3}");
    }

    [Theory]
    [InlineData("8,8,8,5,5,5", 64000)]
    [InlineData("3,3,3,3,3,3", 729)]
    [InlineData("2,7,4,3,6,5", 5040)]
    public void FsqRoundTripsEveryIndex(string text, int codebook)
    {
        var levels = FsqLevels.Parse(text, "test");
        Assert.Equal(codebook, levels.CodebookSize);
        Span<float> code = stackalloc float[Fsq.Dimensions];
        Span<float> z = stackalloc float[Fsq.Dimensions];
        for (int index = 0; index < levels.CodebookSize; index += codebook > 10000 ? 7 : 1)
        {
            Fsq.Code(levels, index, code);
            // a z whose bounded value is 0.95·digit, which rounds to the digit (the extreme digit -4 of an
            // even level count lies outside tanh's range (-h - 1/2, h - 1/2) and is only reached by rounding)
            for (int d = 0; d < Fsq.Dimensions; d++)
            {
                int count = levels.Levels(d);
                float h = (count - 1) * (1 - 1e-3f) / 2, offset = count % 2 == 0 ? 0.5f : 0f;
                float target = 0.95f * code[d] * (count / 2);
                z[d] = MathF.Atanh((target + offset) / h) - MathF.Tan(offset / h);
            }
            Assert.Equal(index, Fsq.Quantize(levels, z));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Fsq.Code(levels, codebook, new float[Fsq.Dimensions]));
    }

    [Theory]
    [InlineData("8,8,8,5,5", "expected 6 levels, found 5")]
    [InlineData("8,8,8,5,5,x", "is not 6 comma-separated level counts")]
    [InlineData("8,8,8,5,5,1", "each must be in [2, 256]")]
    [InlineData("8,8,8,5,5,-3", "is not 6 comma-separated level counts")]
    [InlineData("256,256,256,5,5,5", "codes, more than 16777216")]
    public void BadFsqLevelsAreRefusedWithTheirSource(string text, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => FsqLevels.Parse(text, "t.safetensors: metadata fsq_levels"));
        Assert.StartsWith("t.safetensors: metadata fsq_levels: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void PrefixedKeysLoadAndMissingOnesAreNamed()
    {
        using var dir = new TempDir();
        using (var source = NbpEngine.Loader.Safetensors.SafetensorsFile.Open(Fixtures.PathOf("tokenizer_model.safetensors")))
        {
            var tensors = source.Tensors.Select(t =>
            {
                var data = new float[t.ElementCount];
                source.ReadAsFloat32(t, data);
                return (t.Name, t.Shape, data);
            }).ToList();
            NbpEngine.Loader.Safetensors.SafetensorsWriter.Write(dir.File("prefixed.safetensors"), tensors.Select(t => ("first_stage_model." + t.Name, t.Shape, t.data)));
            NbpEngine.Loader.Safetensors.SafetensorsWriter.Write(dir.File("broken.safetensors"),
                tensors.Where(t => t.Name != "decoder_layers.12.fn.5.conv.weight").Select(t => ("module." + t.Name, t.Shape, t.data)));
            // a conv weight with half its output channels: the error names the weight, not only the bias it no longer matches
            NbpEngine.Loader.Safetensors.SafetensorsWriter.Write(dir.File("misshaped.safetensors"), tensors.Select(t => t.Name == "encoder_layers.0.conv.weight"
                ? (t.Name, new[] { t.Shape[0] / 2, t.Shape[1], t.Shape[2], t.Shape[3], t.Shape[4] }, t.data[..(t.data.Length / 2)])
                : (t.Name, t.Shape, t.data)));
            NbpEngine.Loader.Safetensors.SafetensorsWriter.Write(dir.File("nan.safetensors"), tensors.Select(t => t.Name == "decoder_layers.3.fn.0.bias"
                ? (t.Name, t.Shape, t.data.Select((v, i) => i == 5 ? float.NaN : v).ToArray())
                : (t.Name, t.Shape, t.data)));
        }
        var nan = Assert.Throws<InvalidDataException>(() => new VideoTokenizer(dir.File("nan.safetensors")));
        Assert.Contains("tensor 'decoder_layers.3.fn.0.bias' holds NaN at element 5 [5]", nan.Message);
        var shape = Assert.Throws<InvalidDataException>(() => new VideoTokenizer(dir.File("misshaped.safetensors")));
        Assert.Contains("conv 'encoder_layers.0.conv': weight [32, 3, 3, 3, 3] has 32 output channels but its bias has shape [64]", shape.Message);
        using (var prefixed = new VideoTokenizer(dir.File("prefixed.safetensors")))
            Assert.True(prefixed.HasDecoder && prefixed.HasEncoder);
        var e = Assert.Throws<InvalidDataException>(() => new VideoTokenizer(dir.File("broken.safetensors")));
        Assert.Contains("decoder_layers.12.fn.5.conv.weight", e.Message);
    }
}
