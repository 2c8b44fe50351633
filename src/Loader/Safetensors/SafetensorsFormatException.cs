using NbpEngine.Core;

namespace NbpEngine.Loader.Safetensors;

/// <summary>
/// A safetensors file broke one of the format's rules. The message names the file, the rule and,
/// where one is involved, the tensor with the expected and found values.
/// </summary>
public sealed class SafetensorsFormatException : NbpInputException
{
    public string FilePath { get; }
    public string Rule { get; }

    public SafetensorsFormatException(string filePath, string rule, string detail)
        : base($"{filePath}: invalid safetensors file ({rule}): {detail}")
    {
        FilePath = filePath;
        Rule = rule;
    }
}
