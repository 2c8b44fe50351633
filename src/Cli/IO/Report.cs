namespace NbpEngine.Cli.IO;

/// <summary>
/// Progress and detail lines on stderr, silenced by <c>--quiet</c> (set once per invocation). Errors, results
/// (what was written where) and the generation summary are written directly and always appear.
/// </summary>
internal static class Report
{
    public static bool Quiet { get; set; }

    public static void Detail(string line)
    {
        if (!Quiet) Console.Error.WriteLine(line);
    }

    /// <summary>Percent lines every 10%, for the tokenizer's encode and decode (nothing when quiet).</summary>
    public static IProgress<float>? Progress(string what)
    {
        if (Quiet) return null;
        int last = -1;
        return new Progress<float>(f =>
        {
            int tenth = (int)(f * 10);
            if (tenth == last) return;
            last = tenth;
            Console.Error.WriteLine($"nbp-run: {what} {tenth * 10}%");
        });
    }
}
