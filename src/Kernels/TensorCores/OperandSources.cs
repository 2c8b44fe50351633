using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>
/// Rows of an fp32 matrix (activations), Lda apart: 8 values per load, as two 16-byte loads when
/// <see cref="Vectors"/> is non-empty (the host leaves it empty unless the view starts 16-byte aligned) and Lda and
/// the depth are multiples of 4 and 8.
/// </summary>
public struct RowSource : IOperandSource
{
    public ArrayView<float> Data;
    public ArrayView<Float4> Vectors;
    public int Rows, Depth, Lda;

    public readonly bool Packed => false;
    public readonly Bits128 LoadPacked8(int row, int k) => default;

    public readonly Vec8 Load8(int row, int k)
    {
        if (row >= Rows || k >= Depth) return default;
        long at = (long)row * Lda + k;
        if (Vectors.Length > 0 && Lda % 4 == 0 && Depth % 8 == 0)
        {
            Float4 p = Vectors[at / 4], q = Vectors[at / 4 + 1];
            return new Vec8 { V0 = p.X, V1 = p.Y, V2 = p.Z, V3 = p.W, V4 = q.X, V5 = q.Y, V6 = q.Z, V7 = q.W };
        }
        return new Vec8
        {
            V0 = Data[at], V1 = At(at, k, 1), V2 = At(at, k, 2), V3 = At(at, k, 3),
            V4 = At(at, k, 4), V5 = At(at, k, 5), V6 = At(at, k, 6), V7 = At(at, k, 7),
        };
    }

    private readonly float At(long at, int k, int j) => k + j < Depth ? Data[at + j] : 0f;
}

/// <summary>Weights [rows, depth] through an <see cref="IWeightView"/> (fp32, fp16 or bf16 storage), rounded to fp16 by the main loop.</summary>
public struct WeightSource<TW> : IOperandSource where TW : struct, IWeightView
{
    public TW Weights;
    public int Rows, Depth;

    public readonly bool Packed => false;
    public readonly Bits128 LoadPacked8(int row, int k) => default;

    public readonly Vec8 Load8(int row, int k)
    {
        if (row >= Rows || k >= Depth) return default;
        long at = (long)row * Depth + k;
        if (Depth % 8 == 0) return Weights.Load8(at);
        return new Vec8
        {
            V0 = Weights.Load(at), V1 = At(at, k, 1), V2 = At(at, k, 2), V3 = At(at, k, 3),
            V4 = At(at, k, 4), V5 = At(at, k, 5), V6 = At(at, k, 6), V7 = At(at, k, 7),
        };
    }

    private readonly float At(long at, int k, int j) => k + j < Depth ? Weights.Load(at + j) : 0f;
}

/// <summary>
/// Weights already in fp16, rows of <see cref="UnitsPerRow"/> 16-byte units (the depth rounded up to a whole
/// slice, zero-padded): staged with one 16-byte load and no conversion.
/// </summary>
public struct PackedHalfSource : IOperandSource
{
    public ArrayView<Bits128> Units;
    public int Rows, UnitsPerRow;

    public readonly bool Packed => true;
    public readonly Vec8 Load8(int row, int k) => default;

    public readonly Bits128 LoadPacked8(int row, int k) => row < Rows ? Units[(long)row * UnitsPerRow + k / 8] : default;
}
