using NbpEngine.Cli;

namespace NbpEngine.Tests.Support;

/// <summary>Runs nbp-run in process and captures stderr (tests using it share ConsoleCollection: Console.Error is global).</summary>
public static class CliRunner
{
    public static async Task<(int Code, string Stderr)> Run(params string[] args)
    {
        var previous = Console.Error;
        var capture = new StringWriter();
        Console.SetError(capture);
        try
        {
            return (await GenerateCommand.InvokeAsync(args), capture.ToString());
        }
        finally
        {
            Console.SetError(previous);
        }
    }
}
