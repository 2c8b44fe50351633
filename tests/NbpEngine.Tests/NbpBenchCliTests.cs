using System.Diagnostics;

namespace NbpEngine.Tests;

/// <summary>nbp-bench's command line: help that lists its options, and bad options refused in one line, exit 2, before any work.</summary>
public class NbpBenchCliTests
{
    private static (int Code, string Stdout, string Stderr) Bench(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "nbp-bench.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
    }

    [Fact]
    public void HelpListsTheOptions()
    {
        var (code, stdout, _) = Bench("--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "-r, --repetitions", "--json", "--blocks", "--random-weights", "--torch", "-b, --backend" })
            Assert.Contains(option, stdout);
    }

    [Theory]
    [InlineData(new[] { "--random-weights", "--frobnicate" }, "'--frobnicate'")]
    [InlineData(new[] { "--random-weights", "--blocks", "5" }, "each must divide the 768 generated tokens")]
    [InlineData(new[] { "--random-weights", "--blocks", "16,x" }, "--blocks must be positive integers")]
    [InlineData(new[] { "--random-weights", "-r", "0" }, "--repetitions must be in [1, 100]")]
    [InlineData(new[] { "--weights", "w.safetensors" }, "give --weights and --tokenizer, or --random-weights")]
    [InlineData(new[] { "--random-weights", "--backend", "tpu" }, "tpu")]
    public void BadOptionsAreOneLineAndExitTwo(string[] args, string reason)
    {
        var (code, stdout, stderr) = Bench(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains("error")).ToList();
        Assert.True(errors.Count == 1, stderr);
        Assert.Contains(reason, errors[0]);
    }
}
