using NbpEngine.Core;

namespace NbpEngine.Loader.Pickle;

/// <summary>The pickle broke a rule of <see cref="PickleMachine"/>; <see cref="Offset"/> is the opcode's byte offset.</summary>
public sealed class PickleException(long offset, string detail) : NbpInputException($"pickle offset {offset}: {detail}")
{
    public long Offset { get; } = offset;
    public string Detail { get; } = detail;
}
