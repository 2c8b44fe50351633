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

    /// <summary>The GPU runner's prompt: <see cref="PromptTokens"/> codes spread over the vocabulary (a fixed pattern, so runs compare).</summary>
    public static int[] Prompt() => Enumerable.Range(0, PromptTokens).Select(i => i * 7919 % Vocab).ToArray();
}

/// <summary>
/// The UCF-101 class-to-video workload: the K600 transformer's width over a 96016-row vocabulary (64000 video codes, LLaMA's
/// 32000 condition ids, 16 bov/middle-bos), 8 condition tokens (a class name through LLaMA's tokenizer) + bov, hybrid
/// generation (16 NTP steps, then NBP) of a whole 17-frame clip: 5 latent frames of 16x16 = 1280 tokens.
/// </summary>
public static class UcfWorkload
{
    public const int ConditionTokens = 8, Vocab = 64000 + 32000 + 16, VideoTokens = 1280, BlockSize = 16;
    /// <summary>Hybrid steps for a whole clip: B NTP steps give the first block, then one NBP step per further block.</summary>
    public const int Steps = VideoTokens / BlockSize + BlockSize - 1;

    /// <summary>A random hybrid transformer of the workload's shapes with an uncond_embedding, <paramref name="layers"/> layers.</summary>
    public static void WriteRandomTransformer(string path, int layers) =>
        RandomCheckpoint.Write(path, layers, K600Workload.Heads, K600Workload.Width, Vocab, K600Workload.Positions, ConditionTokens, 64000);
}
