using System.Reflection;
using NbpEngine.Tests.Support;
using PublicApiGenerator;

namespace NbpEngine.Tests;

/// <summary>
/// The public surface of each shipped library, written out and compared with the committed snapshot in
/// tests/NbpEngine.Tests/PublicApi/, so an API change is a deliberate, reviewed edit. On a difference the test
/// writes NAME.received.txt beside the snapshot; copy it over NAME.txt when the change is meant.
/// </summary>
public class PublicApiTests
{
    public static TheoryData<string> Libraries => new()
    {
        "NbpEngine.Core", "NbpEngine.Loader", "NbpEngine.Runtime", "NbpEngine.Tokenizer", "NbpEngine.Kernels", "NbpEngine.Pipeline",
    };

    [Theory]
    [MemberData(nameof(Libraries))]
    public void ThePublicApiMatchesTheSnapshot(string library)
    {
        var assembly = Assembly.Load(library);
        string api = assembly.GeneratePublicApi(new ApiGeneratorOptions { ExcludeAttributes = ["System.Runtime.Versioning.TargetFrameworkAttribute"] })
            .ReplaceLineEndings("\n");
        string folder = Path.Combine(Fixtures.RepositoryRoot, "tests", "NbpEngine.Tests", "PublicApi");
        string snapshot = Path.Combine(folder, library + ".txt"), received = Path.Combine(folder, library + ".received.txt");
        string expected = File.Exists(snapshot) ? File.ReadAllText(snapshot).ReplaceLineEndings("\n") : "";
        if (api == expected)
        {
            File.Delete(received);
            return;
        }
        File.WriteAllText(received, api);
        Assert.Fail($"the public API of {library} changed; if that is meant, copy {received} over {snapshot}");
    }
}
