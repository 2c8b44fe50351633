namespace NbpEngine.Core;

/// <summary>
/// The prefill masks of MODEL.md §4 as one number per query: every mask lets query position i read
/// exactly keys [0, KeyEnd). Plain integer math, so the CPU backend and the ILGPU kernels call the
/// same function. Kinds: 0 = none (cached steps), 1 = block-causal with prefix L, 2 = hybrid.
/// </summary>
public static class MaskMath
{
    public const int None = 0, BlockCausal = 1, Hybrid = 2;

    public static int KeyEnd(int kind, int prefix, int block, int i, int keyCount)
    {
        int end;
        if (kind == BlockCausal) end = i < prefix ? prefix : prefix + ((i - prefix) / block + 1) * block;
        else if (kind == Hybrid)
        {
            int s = prefix + block;
            end = i < prefix ? prefix : i < s ? i + 1 : s + ((i - s) / block + 1) * block;
        }
        else end = keyCount;
        return end < keyCount ? end : keyCount;
    }
}
