using System.Diagnostics;

namespace NbpEngine.Tests.Support;

/// <summary>Runs an external tool (dotnet, ptxas, the installed nbp-run) and returns stdout + stderr; a non-zero exit throws with both.</summary>
public static class ProcessRunner
{
    public static string Run(string exe, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(exe)} {string.Join(' ', psi.ArgumentList)} exited {process.ExitCode}: {stdout}{stderr.Result}");
        return stdout + stderr.Result;
    }
}
