using System.Runtime.Intrinsics;

namespace NbpEngine.Runtime.Cpu;

/// <summary>LayerNorm over one row: eps 1e-5, biased variance, affine (MODEL.md §1).</summary>
public static unsafe class LayerNorm
{
    public const float Epsilon = 1e-5f;

    public static void Row(float* x, float* weight, float* bias, float* destination, int count)
    {
        // Two passes (mean, then centred squares) for the same accuracy as PyTorch's Welford.
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= count; i += 16) acc += Vector512.Load(x + i);
        float sum = Vector512.Sum(acc);
        for (; i < count; i++) sum += x[i];
        float mean = sum / count;

        var vmean = Vector512.Create(mean);
        acc = Vector512<float>.Zero;
        i = 0;
        for (; i + 16 <= count; i += 16)
        {
            var d = Vector512.Load(x + i) - vmean;
            acc = Vector512.FusedMultiplyAdd(d, d, acc);
        }
        float squares = Vector512.Sum(acc);
        for (; i < count; i++) squares += (x[i] - mean) * (x[i] - mean);
        float rstd = 1f / MathF.Sqrt(squares / count + Epsilon);

        var vrstd = Vector512.Create(rstd);
        i = 0;
        for (; i + 16 <= count; i += 16)
        {
            var n = (Vector512.Load(x + i) - vmean) * vrstd;
            Vector512.Store(Vector512.FusedMultiplyAdd(n, Vector512.Load(weight + i), Vector512.Load(bias + i)), destination + i);
        }
        for (; i < count; i++) destination[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
    }
}
