using System.Numerics.Tensors;

namespace NbpEngine.Loader.Safetensors;

/// <summary>Finds NaN or infinite weights (a vectorised scan), so broken checkpoints are named at load, not met as NaN logits.</summary>
public static unsafe class FiniteValues
{
    /// <summary>Null when every value of <paramref name="tensor"/> (as float32 at <paramref name="values"/>) is finite; else a message naming the tensor, the value and its index.</summary>
    public static string? Describe(string path, TensorInfo tensor, float* values)
    {
        const int chunk = 1 << 24;
        for (long start = 0; start < tensor.ElementCount; start += chunk)
        {
            var span = new ReadOnlySpan<float>(values + start, (int)Math.Min(chunk, tensor.ElementCount - start));
            if (TensorPrimitives.IsFiniteAll(span)) continue;
            long at = start;
            while (float.IsFinite(values[at])) at++;
            var index = new long[tensor.Shape.Length];
            for (long rest = at, d = index.Length - 1; d >= 0; d--)
            {
                index[d] = rest % tensor.Shape[d];
                rest /= tensor.Shape[d];
            }
            return $"{path}: tensor '{tensor.Name}' holds {values[at]} at element {at} {TensorInfo.FormatShape(index)}";
        }
        return null;
    }
}
