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

    /// <summary>Grid: frames x 32 groups. In place when y is x. swish = 0 leaves out the Swish (swishBeta unread).</summary>
    public static void Normalize(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> swishBeta, ArrayView<float> y, VolumeArgs v, int swish)
    {
        var sums = SharedMemory.Allocate<float>(MaxGroupSize);
        var squares = SharedMemory.Allocate<float>(MaxGroupSize);
        int frame = Grid.IdxX / Groups, g = Grid.IdxX % Groups;
        int perGroup = v.C / Groups;
        long positions = (long)v.H * v.W, frameBase = frame * positions * v.C;
        long count = positions * perGroup;
        float sum = 0;
        for (long e = Group.IdxX; e < count; e += Group.DimX)
            sum += x[frameBase + (e / perGroup) * v.C + g * perGroup + e % perGroup];
        float mean = LayerNormKernel.GroupSum(sums, sum) / count;
        float square = 0;
        for (long e = Group.IdxX; e < count; e += Group.DimX)
        {
            float d = x[frameBase + (e / perGroup) * v.C + g * perGroup + e % perGroup] - mean;
            square += d * d;
        }
        float rstd = 1f / XMath.Sqrt(LayerNormKernel.GroupSum(squares, square) / count + 1e-5f);
        for (long e = Group.IdxX; e < count; e += Group.DimX)
        {
            int c = g * perGroup + (int)(e % perGroup);
            long at = frameBase + (e / perGroup) * v.C + c;
            float value = (x[at] - mean) * rstd * gamma[c] + beta[c];
            if (swish != 0) value /= 1f + XMath.Exp(-swishBeta[c] * value);
            y[at] = value;
        }
    }
}

/// <summary>Depth2Space3D((bt, bh, bw)) with the first bt-1 output frames dropped; one thread per output element.</summary>
public static class Depth2SpaceKernel
{
    /// <param name="input">[T, H, W, bt·bh·bw·Cout]</param><param name="output">[T·bt-(bt-1), H·bh, W·bw, Cout]</param>
    public static void Rearrange(ArrayView<float> input, ArrayView<float> output, VolumeArgs inShape, int bt, int bh, int bw)
    {
        int cout = inShape.C / (bt * bh * bw);
        int frames = inShape.T * bt - (bt - 1), height = inShape.H * bh, width = inShape.W * bw;
        long total = (long)frames * height * width * cout;
        for (long e = Grid.GlobalIndex.X; e < total; e += (long)Grid.DimX * Group.DimX)
        {
            int o = (int)(e % cout);
            long p = e / cout;
            int wo = (int)(p % width), ho = (int)(p / width % height), to = (int)(p / ((long)width * height)) + bt - 1;
            int t = to / bt, it = to % bt, h = ho / bh, ih = ho % bh, w = wo / bw, iw = wo % bw;
            int channel = ((it * bh + ih) * bw + iw) * cout + o;
            output[e] = input[(((long)t * inShape.H + h) * inShape.W + w) * inShape.C + channel];
        }
    }
}

/// <summary>FSQ (levels 8,8,8,5,5,5) on the device: indices to codes for the decoder, encoder output to indices.</summary>
public static class FsqKernel
{

    /// <summary>codes[p, d] = (digit_d - half_d) / half_d; one thread per position.</summary>
    public static void Codes(ArrayView<int> indices, ArrayView<float> codes, int positions)
    {
        for (int p = Grid.GlobalIndex.X; p < positions; p += Grid.DimX * Group.DimX)
        {
            int index = indices[p];
            for (int d = 0; d < 6; d++)
            {
                int half = FsqLayout.Levels(d) / 2;
                codes[(long)p * 6 + d] = (index / FsqLayout.Basis(d) % FsqLayout.Levels(d) - half) / (float)half;
            }
        }
    }

    /// <summary>index = Σ (round_even(tanh(z + shift)·h - offset) + half)·basis; one thread per position.</summary>
    public static void Quantize(ArrayView<float> z, ArrayView<int> indices, int positions)
    {
        for (int p = Grid.GlobalIndex.X; p < positions; p += Grid.DimX * Group.DimX)
        {
            int index = 0;
            for (int d = 0; d < 6; d++)
            {
                int levels = FsqLayout.Levels(d);
                float h = (levels - 1) * (1 - 1e-3f) / 2;
                float offset = levels % 2 == 0 ? 0.5f : 0f;
                float bounded = XMath.Tanh(z[(long)p * 6 + d] + XMath.Tan(offset / h)) * h - offset;
                index += ((int)XMath.Round(bounded) + levels / 2) * FsqLayout.Basis(d); // XMath.Round: half to even
            }
            indices[p] = index;
        }
    }
}
