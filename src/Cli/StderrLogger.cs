using Microsoft.Extensions.Logging;

namespace NbpEngine.Cli;

/// <summary>Library log lines to stderr, so stdout stays clean for scripts.</summary>
internal sealed class StderrLoggerFactory(LogLevel minimum) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(minimum);
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    private sealed class StderrLogger(LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            string level = logLevel switch { LogLevel.Warning => "warning: ", LogLevel.Error or LogLevel.Critical => "error: ", _ => "" };
            Console.Error.WriteLine($"nbp-run: {level}{formatter(state, exception)}");
        }
    }
}
