using System.Text.Json;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer.Text;
using NbpEngine.Core;

namespace NbpEngine.Tests;

/// <summary>
/// Text prompts against sentencepiece itself (tests/fixtures/text, made by tools/reference/make_text_fixtures.py
/// with a small model trained with LLaMA's settings): the same pieces for every fixture string, then BOS,
/// truncation and EOS padding as MODEL.md §3 says, and the UCF-101 class names.
/// </summary>
public class TextPromptTests
{
    private static readonly string Model = Fixtures.PathOf(Path.Combine("text", "tokenizer.model"));

    public static TheoryData<int> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.PathOf(Path.Combine("text", "ids.json"))));
        return new(Enumerable.Range(0, doc.RootElement.GetProperty("cases").GetArrayLength()));
    }

    private static (string Text, int[] Ids) Case(int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.PathOf(Path.Combine("text", "ids.json"))));
        var c = doc.RootElement.GetProperty("cases")[index];
        return (c.GetProperty("text").GetString()!, c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PiecesEqualSentencepiece(int index)
    {
        var (text, ids) = Case(index);
        Assert.Equal(ids, TextPromptTokenizer.Load(Model).Pieces(text));
    }

    [Fact]
    public void ConditionIdsAreBosPiecesTruncatedOrPaddedWithEos()
    {
        var tokenizer = TextPromptTokenizer.Load(Model);
        Assert.Equal((1, 2), (tokenizer.BeginId, tokenizer.EndId));
        var pieces = tokenizer.Pieces("apply eye makeup").ToArray();
        Assert.Equal([1, .. pieces, .. Enumerable.Repeat(2, 8 - 1 - pieces.Length)], tokenizer.ConditionIds("apply eye makeup", 8));
        Assert.Equal([.. Enumerable.Repeat(2, 8 - 1 - pieces.Length), 1, .. pieces], tokenizer.ConditionIds("apply eye makeup", 8, PaddingSide.Left));
        var longText = tokenizer.Pieces("playing guitar on a stage with people while juggling balls and surfing").ToArray();
        Assert.True(longText.Length > 7);
        Assert.Equal([1, .. longText[..7]], tokenizer.ConditionIds("playing guitar on a stage with people while juggling balls and surfing", 8));
        Assert.Equal([1, 2, 2], tokenizer.ConditionIds("", 3));
        Assert.Equal(new[] { 5, 6, 9 }, TextPromptTokenizer.ModelIds([1, 2, 5], 4, 32000));
        Assert.Throws<InvalidDataException>(() => TextPromptTokenizer.ModelIds([1, 999], 4, 500));
    }

    [Fact]
    public void The101ClassesMapToTheirPrompts()
    {
        Assert.Equal(101, UcfClasses.Names.Count);
        Assert.Equal(101, UcfClasses.Names.Distinct().Count());
        Assert.Equal("apply eye makeup", UcfClasses.Prompt("ApplyEyeMakeup"));
        Assert.Equal("yo yo", UcfClasses.Prompt("YoYo"));
        Assert.Equal("clean and jerk", UcfClasses.Prompt("CleanAndJerk"));
        Assert.Equal("rock climbing indoor", UcfClasses.Prompt("RockClimbingIndoor"));
        Assert.All(UcfClasses.Names, name => Assert.Matches("^[a-z]+( [a-z]+)*$", UcfClasses.Prompt(name)));
        Assert.Equal("TaiChi", UcfClasses.Find("taichi"));
        var e = Assert.Throws<NbpInputException>(() => UcfClasses.Find("PlayingGuittar"));
        Assert.Contains("closest: PlayingGuitar", e.Message);
    }

    [Fact]
    public void ABrokenModelFileIsNamed()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("bad.model"), [1, 2, 3, 4, 5]);
        var e = Assert.ThrowsAny<Exception>(() => TextPromptTokenizer.Load(dir.File("bad.model")));
        Assert.IsType<InvalidDataException>(e);
        Assert.Contains("bad.model", e.Message);
    }
}

/// <summary>The command-line side of text prompts: text-ids, --class list, and a hybrid generation conditioned on a class.</summary>
[Collection(nameof(ConsoleCollection))]
public class TextPromptCliTests : IDisposable
{
    private static readonly string Model = Fixtures.PathOf(Path.Combine("text", "tokenizer.model"));
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task TextIdsPrintsOneLineOfLIdsPerText()
    {
        var tokenizer = TextPromptTokenizer.Load(Model);
        var (code, stdout, stderr) = await CliRunner.RunCapturingOutput("text-ids", "--text-tokenizer", Model, "--cond-length", "8", "apply eye makeup", "a", "--class", "ApplyEyeMakeup");
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal(string.Join(' ', tokenizer.ConditionIds("apply eye makeup", 8)), lines[0]);
        Assert.Equal(string.Join(' ', tokenizer.ConditionIds("a", 8)), lines[1]);
        Assert.Equal(lines[0], lines[2]);
        (code, stdout, _) = await CliRunner.RunCapturingOutput("text-ids", "--text-tokenizer", Model, "--cond-length", "4", "--padding-side", "left", "a");
        Assert.Equal(0, code);
        Assert.Equal(string.Join(' ', tokenizer.ConditionIds("a", 4, PaddingSide.Left)), stdout.Trim());
    }

    [Fact]
    public async Task ClassListPrintsThe101Classes()
    {
        var (code, stdout, _) = await CliRunner.RunCapturingOutput("--class", "list");
        Assert.Equal(0, code);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(101, lines.Length);
        Assert.Equal("ApplyEyeMakeup\tapply eye makeup", lines[0]);
    }

    [Fact]
    public async Task AConditionLengthOutOfRangeIsRefused()
    {
        var (code, stderr) = await CliRunner.Run("text-ids", "--text-tokenizer", Model, "--cond-length", "2000000000", "a");
        Assert.Equal(2, code);
        Assert.Contains("--cond-length must be in [1, 4096], found 2000000000", stderr);
    }

    [Fact]
    public async Task AnUnknownClassNamesTheClosestOnes()
    {
        var (code, stderr) = await CliRunner.Run("text-ids", "--text-tokenizer", Model, "--cond-length", "8", "--class", "Archerry");
        Assert.Equal(2, code);
        Assert.Contains("unknown UCF-101 class 'Archerry'; closest: Archery", stderr);
    }

    [Fact]
    public async Task AClassConditionsAHybridGeneration()
    {
        string weights = TinyModels.TextHybrid(_dir.File("hybrid.safetensors"));
        var (code, stderr) = await CliRunner.Run("--weights", weights, "--class", "PlayingGuitar", "--text-tokenizer", Model, "--tokens-out", _dir.File("o.txt"),
            "--greedy", "--quiet", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        var expected = TextPromptTokenizer.Load(Model).ConditionIds("playing guitar", 8).Select(id => id + 4).Append(0);
        Assert.Contains($"condition 'playing guitar' -> {string.Join(' ', expected)}", stderr);
        Assert.Equal(8, Fixtures.Tokens(_dir.File("o.txt")).Length);
        (code, stderr) = await CliRunner.Run("--weights", Fixtures.PathOf("frame_model.safetensors"), "--class", "PlayingGuitar", "--text-tokenizer", Model,
            "--tokens-out", _dir.File("p.txt"));
        Assert.Equal(2, code);
        Assert.Contains("this checkpoint is not hybrid", stderr);
    }
}
