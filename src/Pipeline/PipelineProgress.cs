namespace NbpEngine.Pipeline;

/// <summary>The phases of a run, in the order they happen.</summary>
public enum PipelinePhase
{
    /// <summary>Reading and checking the transformer's weights.</summary>
    Load,
    /// <summary>Conditioning frames to FSQ codes.</summary>
    Encode,
    /// <summary>The prompt through the transformer, up to the first block's logits.</summary>
    Prefill,
    /// <summary>One block per step after the prefill.</summary>
    Steps,
    /// <summary>Codes back to frames.</summary>
    Decode,
}

/// <summary>How far a phase is: <paramref name="Fraction"/> in [0, 1]; <paramref name="Done"/> of <paramref name="Total"/> units (steps, layers).</summary>
public readonly record struct PipelineProgress(PipelinePhase Phase, double Fraction, int Done = 0, int Total = 0);
