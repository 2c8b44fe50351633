using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace NbpEngine.Cli.Options;

/// <summary>
/// nbp-run's own help: its options under headings (generation, sampling, video, backend, ...) in the order a
/// user reaches for them, instead of one list of 30-odd; subcommands keep System.CommandLine's help.
/// </summary>
internal sealed class GroupedHelp(Command root, IReadOnlyList<(string Heading, Option[] Options)> groups, HelpAction standard) : SynchronousCommandLineAction
{
    public override int Invoke(ParseResult parse)
    {
        if (parse.CommandResult.Command != root) return standard.Invoke(parse);
        var output = parse.InvocationConfiguration.Output;
        output.WriteLine("Description:");
        output.WriteLine($"  {root.Description}");
        output.WriteLine();
        output.WriteLine("Usage:");
        output.WriteLine("  nbp-run -m MODEL --prompt-tokens FILE --tokens-out FILE [options]        tokens from tokens");
        output.WriteLine("  nbp-run -m MODEL --tokenizer TOK --input FRAMES --output VIDEO [options]  video from frames");
        output.WriteLine("  nbp-run -m MODEL --class NAME --text-tokenizer FILE --tokens-out FILE    tokens from words (UCF)");
        output.WriteLine("  nbp-run [command] [options]");
        var rows = groups.SelectMany(g => g.Options).Select(Left).ToList();
        int width = Math.Min(40, rows.Max(r => r.Length)) + 2;
        foreach (var (heading, options) in groups)
        {
            output.WriteLine();
            output.WriteLine($"{heading}:");
            foreach (var option in options)
            {
                string left = Left(option);
                string defaultText = option.HasDefaultValue && option.ValueType != typeof(bool) ? $" [default: {Format(option.GetDefaultValue())}]" : "";
                output.WriteLine(left.Length < width ? $"  {left.PadRight(width)}{option.Description}{defaultText}" : $"  {left}\n  {new string(' ', width)}{option.Description}{defaultText}");
            }
        }
        output.WriteLine();
        output.WriteLine("Commands:");
        foreach (var command in root.Subcommands) output.WriteLine($"  {command.Name.PadRight(width)}{command.Description}");
        output.WriteLine();
        output.WriteLine("'nbp-run COMMAND --help' describes a command. Exit codes: 0 done, 1 internal error, 2 bad input, 3 some batch jobs failed, 130 interrupted.");
        return 0;
    }

    private static string Left(Option option)
    {
        string names = string.Join(", ", option.Aliases.OrderBy(a => a.Length).Append(option.Name));
        return option.ValueType == typeof(bool) ? names : $"{names} <{option.HelpName ?? option.Name.TrimStart('-').ToUpperInvariant()}>";
    }

    private static string Format(object? value) => value switch
    {
        null => "none",
        string s => s,
        Enum e => e.ToString().ToLowerInvariant(),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>Installs the grouped help on <paramref name="root"/>; every root option must be in a group (checked here, so a new one is not forgotten).</summary>
    public static void Install(RootCommand root, IReadOnlyList<(string Heading, Option[] Options)> groups)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        var grouped = groups.SelectMany(g => g.Options).ToHashSet();
        var missing = root.Options.Where(o => o is not HelpOption and not VersionOption && !grouped.Contains(o)).Select(o => o.Name).ToList();
        if (missing.Count > 0) throw new InvalidOperationException($"options not in a help group: {string.Join(", ", missing)}");
        help.Action = new GroupedHelp(root, groups, (HelpAction)help.Action!);
    }
}
