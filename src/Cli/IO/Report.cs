using NbpEngine.Pipeline;
using Spectre.Console;

namespace NbpEngine.Cli.IO;

/// <summary>
/// Progress and detail lines on stderr, silenced by <c>--quiet</c> (set once per invocation). On a terminal,
/// progress is Spectre.Console bars (load, encode, prefill, steps, decode) with detail lines printed above them;
/// when stderr is a file or a pipe, plain lines (every 10% of a phase). Errors, results (what was written where)
/// and the generation summary are written directly and always appear.
/// </summary>
internal static class Report
{
    public static bool Quiet { get; set; }

    /// <summary>The live bars' console while <see cref="Run{T}"/> shows them (detail lines go through it).</summary>
    private static IAnsiConsole? _live;
    private static readonly object Gate = new();

    public static void Detail(string line)
    {
        if (Quiet) return;
        lock (Gate)
        {
            if (_live is not null) _live.WriteLine(line, Style.Plain);
            else Console.Error.WriteLine(line);
        }
    }

    /// <summary>Runs <paramref name="work"/> with a progress sink: bars on a terminal, plain lines otherwise, none when quiet.</summary>
    public static T Run<T>(Func<IProgress<PipelineProgress>?, T> work)
    {
        if (Quiet) return work(null);
        if (Console.IsErrorRedirected) return work(PlainLines());
        var bars = Bars(out var console);
        return bars.Start(context =>
        {
            using var live = Live(console);
            return work(Sink(context));
        });
    }

    /// <summary>The asynchronous form of <see cref="Run{T}"/> (loading).</summary>
    public static async Task<T> RunAsync<T>(Func<IProgress<PipelineProgress>?, Task<T>> work)
    {
        if (Quiet) return await work(null);
        if (Console.IsErrorRedirected) return await work(PlainLines());
        var bars = Bars(out var console);
        return await bars.StartAsync(async context =>
        {
            using var live = Live(console);
            return await work(Sink(context));
        });
    }

    /// <summary>Spectre's progress display on stderr, the same columns for every phase.</summary>
    private static Progress Bars(out IAnsiConsole console)
    {
        console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn());
    }

    /// <summary>Routes <see cref="Detail"/> lines through the live display until disposed.</summary>
    private static IDisposable Live(IAnsiConsole console)
    {
        lock (Gate) _live = console;
        return new EndLive();
    }

    private sealed class EndLive : IDisposable
    {
        public void Dispose()
        {
            lock (Gate) _live = null;
        }
    }

    /// <summary>One bar per phase, added when the phase first reports, stopped at 100%.</summary>
    private static IProgress<PipelineProgress> Sink(ProgressContext context)
    {
        var bars = new Dictionary<PipelinePhase, ProgressTask>();
        return new SynchronousProgress<PipelineProgress>(p =>
        {
            lock (Gate)
            {
                if (!bars.TryGetValue(p.Phase, out var bar)) bars[p.Phase] = bar = context.AddTask(Name(p), maxValue: 1);
                bar.Description = Name(p);
                bar.Value = p.Fraction;
                if (p.Fraction >= 1) bar.StopTask();
            }
        });
    }

    /// <summary>A tokenizer phase's fraction as bars or lines (for the encode and decode commands).</summary>
    public static T Run<T>(PipelinePhase phase, Func<IProgress<float>?, T> work) => Run(progress => work(NbpPipeline.Fraction(progress, phase)));

    private static string Name(PipelineProgress p) => p.Total > 1 ? $"{p.Phase.ToString().ToLowerInvariant()} {p.Done}/{p.Total}" : p.Phase.ToString().ToLowerInvariant();

    private static IProgress<PipelineProgress> PlainLines()
    {
        var last = new Dictionary<PipelinePhase, int>();
        return new SynchronousProgress<PipelineProgress>(p =>
        {
            int tenth = (int)(p.Fraction * 10);
            lock (Gate)
            {
                if (last.TryGetValue(p.Phase, out int seen) && seen == tenth) return;
                last[p.Phase] = tenth;
            }
            Console.Error.WriteLine(p.Total > 1 ? $"nbp-run: {Name(p)} ({tenth * 10}%)" : $"nbp-run: {Name(p)} {tenth * 10}%");
        });
    }
}
