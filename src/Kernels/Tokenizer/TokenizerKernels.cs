using NbpEngine.Core;
using ILGPU;
using ILGPU.Algorithms;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Tokenizer;

public struct VolumeArgs
{
    /// <summary>A channels-last volume [T, H, W, C].</summary>
    public int T, H, W, C;
}

/// <summary>GroupNorm3D (32 groups, per frame, eps 1e-5, affine) optionally fused with Swish x·sigmoid(beta_c·x).</summary>
public static class GroupNormSwishKernel
{
    public const int Groups = 32, MaxGroupSize = 256;

    /// <summary>
    /// Grid: frames x 32 groups. In place when y is x. swish = 0 leaves out the Swish (swishBeta unread). Element e
    /// of a group is (position e / perGroup, channel e % perGroup), in 32-bit arithmetic within a frame (a frame of
    /// 128x128x512 is 8.4 M values), and by shift and mask when perGroup is a power of two (the published widths).
    /// </summary>
    public static void Normalize(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> swishBeta, ArrayView<float> y, VolumeArgs v, int swish)
    {
        var sums = SharedMemory.Allocate<float>(MaxGroupSize);
        var squares = SharedMemory.Allocate<float>(MaxGroupSize);
        int frame = Grid.IdxX / Groups, g = Grid.IdxX % Groups;
        int perGroup = v.C / Groups, count = v.H * v.W * perGroup;
        int shift = 0;
        while ((1 << shift) < perGroup) shift++;
        if ((1 << shift) != perGroup) shift = -1;
        var group = x.SubView((long)frame * v.H * v.W * v.C + g * perGroup);
        var output = y.SubView((long)frame * v.H * v.W * v.C + g * perGroup);
        float sum = 0;
        for (int e = Group.IdxX; e < count; e += Group.DimX) sum += group[Offset(e, perGroup, shift, v.C, out _)];
        float mean = LayerNormKernel.GroupSum(sums, sum) / count;
        float square = 0;
        for (int e = Group.IdxX; e < count; e += Group.DimX)
        {
            float d = group[Offset(e, perGroup, shift, v.C, out _)] - mean;
            square += d * d;
        }
        float rstd = 1f / XMath.Sqrt(LayerNormKernel.GroupSum(squares, square) / count + 1e-5f);
        for (int e = Group.IdxX; e < count; e += Group.DimX)
        {
            int at = Offset(e, perGroup, shift, v.C, out int j), c = g * perGroup + j;
            float value = (group[at] - mean) * rstd * gamma[c] + beta[c];
            if (swish != 0) value /= 1f + XMath.Exp(-swishBeta[c] * value);
            output[at] = value;
        }
    }

    /// <summary>Element e of a group: its offset from the group's first channel of the frame, and its channel j within the group.</summary>
    private static int Offset(int e, int perGroup, int shift, int channels, out int j)
    {
        int p = shift >= 0 ? e >> shift : e / perGroup;
        j = e - p * perGroup;
        return p * channels + j;
    }
}

/// <summary>FSQ on the device, with the tokenizer's levels as an argument: indices to codes for the decoder, encoder output to indices.</summary>
public static class FsqKernel
{

    /// <summary>codes[p, d] = (digit_d - half_d) / half_d; one thread per position.</summary>
    public static void Codes(ArrayView<int> indices, ArrayView<float> codes, int positions, FsqLevels levels)
    {
        for (int p = Grid.GlobalIndex.X; p < positions; p += Grid.DimX * Group.DimX)
        {
            int index = indices[p];
            for (int d = 0; d < 6; d++)
            {
                int half = levels.Levels(d) / 2;
                codes[(long)p * 6 + d] = (index / levels.Basis(d) % levels.Levels(d) - half) / (float)half;
            }
        }
    }

    /// <summary>index = Σ (round_even(tanh(z + shift)·h - offset) + half)·basis; one thread per position.</summary>
    public static void Quantize(ArrayView<float> z, ArrayView<int> indices, int positions, FsqLevels levels)
    {
        for (int p = Grid.GlobalIndex.X; p < positions; p += Grid.DimX * Group.DimX)
        {
            int index = 0;
            for (int d = 0; d < 6; d++)
            {
                int count = levels.Levels(d);
                float h = (count - 1) * (1 - 1e-3f) / 2;
                float offset = count % 2 == 0 ? 0.5f : 0f;
                float bounded = XMath.Tanh(z[(long)p * 6 + d] + XMath.Tan(offset / h)) * h - offset;
                index += ((int)XMath.Round(bounded) + count / 2) * levels.Basis(d); // XMath.Round: half to even
            }
            indices[p] = index;
        }
    }
}
