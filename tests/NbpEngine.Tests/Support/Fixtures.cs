using System.Text.Json;

namespace NbpEngine.Tests.Support;

/// <summary>The committed PyTorch fixtures (tests/fixtures, made by tools/reference/make_fixtures.py).</summary>
public static class Fixtures
{
    public const string Regenerate = "/usr/bin/python3 tools/reference/make_fixtures.py";
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "fixtures");
    public static string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>The checkout the tests were built from (the folder holding NbpEngine.sln above the test binaries).</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "NbpEngine.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException($"no NbpEngine.sln above {AppContext.BaseDirectory}");
        }
    }

    /// <param name="GuidanceScale">classifier-free guidance scale (0: none), with <paramref name="GuidanceSchedule"/> constant or linear</param>
    public sealed record Case(string Name, string Model, string Prompt, string Mode, int BlockSize, int Steps, int CondLength, float GuidanceScale = 0,
        string GuidanceSchedule = "constant");

    public static Case Get(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf("fixtures.json")));
        var c = doc.RootElement.GetProperty("cases").GetProperty(name);
        return new Case(name, c.GetProperty("model").GetString()!, c.GetProperty("prompt").GetString()!, c.GetProperty("mode").GetString()!,
            c.GetProperty("block_size").GetInt32(), c.GetProperty("steps").GetInt32(), c.GetProperty("cond_length").GetInt32(),
            c.TryGetProperty("guidance_scale", out var scale) ? scale.GetSingle() : 0,
            c.TryGetProperty("guidance_schedule", out var schedule) ? schedule.GetString()! : "constant");
    }

    /// <summary>The numbers of a token file (a fixture name or a path), after its '# nbp-tokens:' header line if it has one.</summary>
    public static int[] Tokens(string file) =>
        File.ReadAllLines(PathOf(file)).Where(line => !line.StartsWith('#')).SelectMany(line => line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse).ToArray();

    /// <summary>Reads a float32 little-endian C-order .npy; returns data and shape.</summary>
    public static (float[] Data, int[] Shape) Npy(string path) => Npy<float>(path, "'<f4'");

    /// <summary>Reads an int32 little-endian C-order .npy; returns data and shape.</summary>
    public static (int[] Data, int[] Shape) NpyInt(string path) => Npy<int>(path, "'<i4'");

    private static (T[] Data, int[] Shape) Npy<T>(string path, string descr) where T : unmanaged
    {
        var bytes = File.ReadAllBytes(path);
        int headerLength = BitConverter.ToUInt16(bytes, 8);
        string header = System.Text.Encoding.ASCII.GetString(bytes, 10, headerLength);
        if (!header.Contains(descr) || header.Contains("'fortran_order': True")) throw new InvalidDataException($"{path}: expected C-order {descr}, header {header}");
        int open = header.IndexOf("'shape': (", StringComparison.Ordinal) + 10;
        int close = header.IndexOf(')', open);
        var shape = header[open..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        var data = new T[(bytes.Length - 10 - headerLength) / System.Runtime.CompilerServices.Unsafe.SizeOf<T>()];
        Buffer.BlockCopy(bytes, 10 + headerLength, data, 0, bytes.Length - 10 - headerLength);
        return (data, shape);
    }
}
