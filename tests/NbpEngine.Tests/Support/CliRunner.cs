using NbpEngine.Cli;

namespace NbpEngine.Tests.Support;

/// <summary>Runs nbp-run in process and captures stderr (tests using it share ConsoleCollection: Console.Error is global).</summary>
public static class CliRunner
{
    public static async Task<(int Code, string Stderr)> Run(params string[] args)
    {
        var (code, _, stderr) = await RunCapturingOutput(args);
        return (code, stderr);
    }

    /// <summary>Also captures stdout (commands that print results there: text-ids, --class list).</summary>
    public static async Task<(int Code, string Stdout, string Stderr)> RunCapturingOutput(params string[] args)
    {
        var (previousOut, previousError) = (Console.Out, Console.Error);
        var (output, error) = (new StringWriter(), new StringWriter());
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            return (await GenerateCommand.InvokeAsync(args), output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(previousOut);
            Console.SetError(previousError);
        }
    }
}
