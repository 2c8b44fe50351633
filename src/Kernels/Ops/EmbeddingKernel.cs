using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

public struct EmbeddingArgs
{
    public int Rows, Width, StartPosition;
    /// <summary>The first rows embed uncond_embedding rows in place of their tokens' (classifier-free guidance's unconditional stream).</summary>
    public int UnconditionalRows;
}

/// <summary>
/// x[r] = tok_emb[id[r]] + pos_emb[start + r] (uncond_embedding[r] in place of tok_emb[id[r]] for r &lt; UnconditionalRows).
/// Grid: one group per row; the group strides over C.
/// </summary>
public static class EmbeddingKernel
{
    /// <param name="ids">[rows] model-vocabulary ids (validated on the host)</param>
    /// <param name="tokens">[V, C]</param><param name="positions">[P, C]</param>
    /// <param name="unconditional">[cond_token_num, C] (any view when UnconditionalRows is 0)</param><param name="x">[rows, C]</param>
    public static void Embed<TW>(ArrayView<int> ids, TW tokens, TW positions, TW unconditional, ArrayView<float> x, EmbeddingArgs args) where TW : struct, IWeightView
    {
        int row = Grid.IdxX;
        if (row >= args.Rows) return;
        bool uncond = row < args.UnconditionalRows; // the same for the whole group
        var source = uncond ? unconditional : tokens;
        long tokenBase = (uncond ? row : (long)ids[row]) * args.Width;
        long positionBase = (long)(args.StartPosition + row) * args.Width;
        long outBase = (long)row * args.Width;
        for (int c = Group.IdxX; c < args.Width; c += Group.DimX)
            x[outBase + c] = source.Load(tokenBase + c) + positions.Load(positionBase + c);
    }
}
