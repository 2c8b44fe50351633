namespace NbpEngine.Parity;

/// <summary>
/// The K600 frame-prediction workload the paper times (Table 1, Figure 7), in one place for nbp-bench and the GPU
/// runner: a 16-head, C = 1536 transformer over the 64000-code vocabulary; 5 conditioning frames of 128x128 (2 latent
/// frames, 512 tokens) and 768 generated tokens (3 latent frames, 12 frames) of a 17-frame clip.
/// </summary>
public static class K600Workload
{
    public const int Heads = 16, Width = 1536, Vocab = 64000, Positions = 5120;
    public const int Resolution = 128, LatentSide = 16, ClipFrames = 17, ConditioningFrames = 5;
    public const int PromptTokens = 512, GeneratedTokens = 768, GeneratedFrames = 12;

    /// <summary>A random transformer of the workload's shapes with <paramref name="layers"/> layers (24 in the paper's model).</summary>
    public static void WriteRandomTransformer(string path, int layers) => RandomCheckpoint.Write(path, layers, Heads, Width, Vocab, Positions);
}
