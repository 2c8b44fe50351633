using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

public struct EmbeddingArgs
{
    public int Rows, Width, StartPosition;
}

/// <summary>x[r] = tok_emb[id[r]] + pos_emb[start + r]. Grid: one group per row; the group strides over C.</summary>
public static class EmbeddingKernel
{
    /// <param name="ids">[rows] model-vocabulary ids (validated on the host)</param>
    /// <param name="tokens">[V, C]</param><param name="positions">[P, C]</param><param name="x">[rows, C]</param>
    public static void Embed<TW>(ArrayView<int> ids, TW tokens, TW positions, ArrayView<float> x, EmbeddingArgs args) where TW : struct, IWeightView
    {
        int row = Grid.IdxX;
        if (row >= args.Rows) return;
        long tokenBase = (long)ids[row] * args.Width;
        long positionBase = (long)(args.StartPosition + row) * args.Width;
        long outBase = (long)row * args.Width;
        for (int c = Group.IdxX; c < args.Width; c += Group.DimX)
            x[outBase + c] = tokens.Load(tokenBase + c) + positions.Load(positionBase + c);
    }
}
