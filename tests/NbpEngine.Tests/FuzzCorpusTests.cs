using NbpEngine.Fuzz;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// Replays what the AFL++ runs kept (tests/fixtures/fuzz/TARGET: the minimised queue and every crash input,
/// from tools/fuzz/run.sh) and the malicious checkpoints through the same targets: each input must be read or
/// refused with the target's own exception, nothing else.
/// </summary>
public class FuzzCorpusTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Targets() => new(FuzzTargets.Names);

    [Theory]
    [MemberData(nameof(Targets))]
    public void TheKeptCorpusReadsOrIsRefusedCleanly(string target)
    {
        string folder = Fixtures.PathOf(Path.Combine("fuzz", target));
        var inputs = Directory.GetFiles(folder);
        Assert.True(inputs.Length >= 5, $"{folder}: only {inputs.Length} inputs; regenerate with tools/fuzz/run.sh {target}");
        if (target == "checkpoint") inputs = [.. inputs, .. Directory.GetFiles(Fixtures.PathOf("malicious"), "*.*").Where(f => !f.EndsWith(".json"))];
        int refused = inputs.Count(input => !FuzzTargets.Run(target, input, _dir.Path));
        Assert.InRange(refused, 1, inputs.Length); // the corpus holds broken inputs: some must have been refused
    }
}
