using NbpEngine.Core;

namespace NbpEngine.Runtime.Sampling;

/// <summary>A row of logits holds NaN or infinite values, so no token can be sampled from it (usually broken weights).</summary>
public sealed class NonFiniteLogitsException(string message) : NbpInputException(message)
{
    public static NonFiniteLogitsException Of(ReadOnlySpan<float> logits)
    {
        int nan = 0, inf = 0, first = -1;
        for (int i = 0; i < logits.Length; i++)
        {
            if (float.IsFinite(logits[i])) continue;
            if (float.IsNaN(logits[i])) nan++;
            else inf++;
            if (first < 0) first = i;
        }
        return new NonFiniteLogitsException($"logits hold {nan} NaN and {inf} infinite values (first at id {first}): the weights are broken or overflow");
    }
}
