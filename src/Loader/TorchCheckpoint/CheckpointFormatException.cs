using NbpEngine.Core;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>
/// A training checkpoint could not be read safely: not a zip checkpoint, a broken archive, a pickle that
/// names a global outside the allow-list or breaks one of the reader's bounds, or tensors that do not fit
/// their storages. The message names the file and, for pickle errors, the offset in data.pkl.
/// </summary>
public sealed class CheckpointFormatException(string filePath, string detail) : NbpInputException($"{filePath}: {detail}")
{
    public string FilePath { get; } = filePath;
}
