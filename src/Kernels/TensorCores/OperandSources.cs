using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>
/// Rows of a matrix read through an <see cref="IWeightView"/>, <see cref="Stride"/> elements apart: the weights (fp32,
/// fp16 or bf16 storage) or the fp32 activations (as <see cref="F32Weights"/>), rounded to fp16 by the main loop.
/// 8 values per load as 16-byte loads when <see cref="Vectorized"/> (the view starts 16-byte aligned) and the stride
/// and depth are multiples of 8; element by element otherwise.
/// </summary>
public struct MatrixSource<TW> : IOperandSource where TW : struct, IWeightView
{
    public TW Matrix;
    public int Rows, Depth, Stride;
    public bool Vectorized;
    private long _at;
    private int _k, _row;

    public readonly bool Packed => false;
    public readonly Bits128 NextPacked8() => default;

    public void Seek(int row, int k)
    {
        _row = row;
        _k = k;
        _at = (long)row * Stride + k;
    }

    public Vec8 Next8()
    {
        long at = _at;
        int k = _k;
        _at += 8;
        _k += 8;
        if (_row >= Rows || k >= Depth) return default;
        if (Vectorized && Stride % 8 == 0 && Depth % 8 == 0) return Matrix.Load8(at);
        return new Vec8
        {
            V0 = Matrix.Load(at), V1 = At(at, k, 1), V2 = At(at, k, 2), V3 = At(at, k, 3),
            V4 = At(at, k, 4), V5 = At(at, k, 5), V6 = At(at, k, 6), V7 = At(at, k, 7),
        };
    }

    private readonly float At(long at, int k, int j) => k + j < Depth ? Matrix.Load(at + j) : 0f;
}

/// <summary>
/// Weights already in fp16, rows of <see cref="UnitsPerRow"/> 16-byte units (the depth rounded up to a whole
/// slice, zero-padded): staged with one 16-byte load and no conversion.
/// </summary>
public struct PackedHalfSource : IOperandSource
{
    public ArrayView<Bits128> Units;
    public int Rows, UnitsPerRow;
    private long _at;
    private int _row;

    public readonly bool Packed => true;
    public readonly Vec8 Next8() => default;

    public void Seek(int row, int k)
    {
        _row = row;
        _at = (long)row * UnitsPerRow + k / 8;
    }

    public Bits128 NextPacked8() => _row < Rows ? Units[_at++] : default;
}
