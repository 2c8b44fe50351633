namespace NbpEngine.Core;

/// <summary>
/// Something the engine was given is wrong (a file, a hyper-parameter, a request, a backend this machine lacks):
/// the caller can fix it, and the message says what was expected and what was found. The base of the engine's
/// own error types, so a host or the CLI can tell them from bugs (exit 2 versus 1 in nbp-run).
/// </summary>
public class NbpInputException(string message) : Exception(message);
