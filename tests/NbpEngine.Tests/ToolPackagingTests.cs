using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// nbp-run ships as a .NET tool: the package packed from this build installs with <c>dotnet tool install</c>
/// from a local folder (no other source consulted) and the installed command runs.
/// </summary>
public class ToolPackagingTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    [Fact]
    public void ThePackedToolInstallsFromALocalFolderAndRuns()
    {
        string packages = _dir.File("packages"), tools = _dir.File("tools");
        // packs what the suite's build already compiled (--no-build): seconds, not a second build
        Run("dotnet", "pack", Path.Combine(Fixtures.RepositoryRoot, "src", "Cli", "NbpEngine.Cli.csproj"), "-c", Configuration, "--no-build", "-o", packages);
        var package = Assert.Single(Directory.GetFiles(packages, "nbp-run.*.nupkg"));
        Run("dotnet", "tool", "install", "nbp-run", "--tool-path", tools, "--source", packages, "--prerelease");
        string help = Run(Path.Combine(tools, "nbp-run"), "--help");
        Assert.Contains("nbp-run: Next-Block-Prediction video generation", help);
        string converted = _dir.File("dtypes.safetensors");
        Run(Path.Combine(tools, "nbp-run"), "convert", Fixtures.PathOf(Path.Combine("checkpoints", "dtypes.pt")), converted);
        Assert.Equal(File.ReadAllBytes(Fixtures.PathOf(Path.Combine("checkpoints", "dtypes_f32.expected.safetensors"))), File.ReadAllBytes(converted));
        Assert.Contains("nbp-run", Path.GetFileName(package));
    }

    private static string Run(string exe, params string[] args) =>
        ProcessRunner.Run(exe, args, new Dictionary<string, string> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" });
}
