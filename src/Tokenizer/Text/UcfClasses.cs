using System.Reflection;
using System.Text.RegularExpressions;
using NbpEngine.Core;

namespace NbpEngine.Tokenizer.Text;

/// <summary>
/// The 101 UCF-101 class names, and the prompt each stands for: split before every capital and lower-cased
/// ("ApplyEyeMakeup" -> "apply eye makeup", "YoYo" -> "yo yo"), as the UCF model was trained (MODEL.md §3).
/// </summary>
public static partial class UcfClasses
{
    public static IReadOnlyList<string> Names { get; } = Load();

    private static string[] Load()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("ucf101-classes.txt")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static string Prompt(string className) => CapitalBoundary().Replace(className, " $1").Trim().ToLowerInvariant();

    /// <summary>The class named <paramref name="name"/> (case ignored); an unknown name is an error listing the closest names.</summary>
    public static string Find(string name)
    {
        var match = Names.FirstOrDefault(n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        if (match is not null) return match;
        var closest = Names.OrderBy(n => Distance(n.ToLowerInvariant(), name.ToLowerInvariant())).Take(3);
        throw new NbpInputException($"unknown UCF-101 class '{name}'; closest: {string.Join(", ", closest)} ('--class list' prints all 101)");
    }

    /// <summary>Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    [GeneratedRegex("([A-Z])")]
    private static partial Regex CapitalBoundary();
}
