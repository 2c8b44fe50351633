using NbpEngine.Core;

namespace NbpEngine.Runtime.Attention;

/// <summary>Values match <see cref="MaskMath"/>'s kinds, which the kernels take as ints.</summary>
public enum MaskKind
{
    /// <summary>Cached steps: every row reads every cached and every new key (MODEL.md §4, last bullet).</summary>
    None = MaskMath.None,
    /// <summary>Condition prefix of length L read by all; block-causal in blocks of B from L (L = 0: frame prediction).</summary>
    BlockCausal = MaskMath.BlockCausal,
    /// <summary>UCF hybrid: prefix L, causal until S = L + B, block-causal in blocks of B from S.</summary>
    Hybrid = MaskMath.Hybrid,
}

/// <summary>
/// The prefill masks of MODEL.md §4. Every one of them lets query i read exactly the keys
/// [0, KeyEnd(i)): a contiguous prefix. Kernels therefore take one number per row instead of a
/// seq x seq mask, and skip every key tile at or past the largest KeyEnd of a query tile.
/// </summary>
public readonly record struct AttentionMask(MaskKind Kind, int PrefixLength, int BlockSize)
{
    public static AttentionMask None => new(MaskKind.None, 0, 1);
    public static AttentionMask BlockCausal(int prefixLength, int blockSize) => new(MaskKind.BlockCausal, prefixLength, blockSize);
    public static AttentionMask Hybrid(int prefixLength, int blockSize) => new(MaskKind.Hybrid, prefixLength, blockSize);

    /// <summary>The spec's allowed(i, j), written exactly as MODEL.md states it.</summary>
    public bool IsAllowed(int i, int j)
    {
        int l = PrefixLength, b = BlockSize;
        switch (Kind)
        {
            case MaskKind.None:
                return true;
            case MaskKind.BlockCausal:
                if (j < l) return true;
                if (i < l) return false;
                return (j - l) / b <= (i - l) / b;
            case MaskKind.Hybrid:
                int s = l + b;
                return j < l || j <= i || (i >= s && j >= s && (j - s) / b <= (i - s) / b);
            default:
                throw new InvalidOperationException($"unknown mask kind {Kind}");
        }
    }

    /// <summary>Exclusive end of the keys query position <paramref name="i"/> may read, capped at <paramref name="keyCount"/>.</summary>
    public int KeyEnd(int i, int keyCount) => MaskMath.KeyEnd((int)Kind, PrefixLength, BlockSize, i, keyCount);
}
