using System.Buffers.Binary;
using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>
/// Streams a <see cref="TorchTensor"/>'s elements in row-major order into a safetensors buffer, converted the
/// way PyTorch's <c>tensor.to(dtype)</c> converts: every source type goes through float32 (so float64 and
/// int64 round twice when the target is half precision, as in torch), float32 -> float16 rounds to nearest
/// even with NaN as sign | 0x7E00, float32 -> bfloat16 rounds to nearest even with NaN as 0x7FC0. A tensor
/// already in the target type keeps its bits. Contiguous little-endian tensors of the target type are copied
/// straight from the memory map.
/// </summary>
public static unsafe class TensorConversion
{
    private const int ChunkBytes = 1 << 20;

    /// <summary>Bytes <paramref name="tensor"/> takes as <paramref name="target"/>.</summary>
    public static long OutputBytes(TorchTensor tensor, TensorDType target) => checked(tensor.ElementCount * target.SizeInBytes());

    public static void Write(Stream output, byte* storage, TorchTensor tensor, TensorDType target, bool bigEndian)
    {
        var source = tensor.Storage.DType;
        int sourceSize = source.SizeInBytes(), targetSize = target.SizeInBytes();
        bool sameType = SameType(source, target);
        if (tensor.ElementCount == 0) return;
        if (sameType && tensor.IsContiguous && (!bigEndian || sourceSize == 1))
        {
            byte* start = storage + tensor.StorageOffset * sourceSize;
            long total = tensor.ElementCount * sourceSize;
            for (long done = 0; done < total; done += ChunkBytes)
                output.Write(new ReadOnlySpan<byte>(start + done, (int)Math.Min(ChunkBytes, total - done)));
            return;
        }
        // element by element along the last dimension, an odometer over the others
        int rank = tensor.Shape.Length;
        long inner = rank == 0 ? 1 : tensor.Shape[^1], innerStride = rank == 0 ? 0 : tensor.Strides[^1];
        var index = new long[Math.Max(rank - 1, 0)];
        var buffer = new byte[Math.Max(ChunkBytes / targetSize * targetSize, targetSize)];
        int filled = 0;
        for (long row = 0, rows = tensor.ElementCount / inner; row < rows; row++)
        {
            long at = tensor.StorageOffset;
            for (int d = 0; d < index.Length; d++) at += index[d] * tensor.Strides[d];
            for (long i = 0; i < inner; i++, at += innerStride)
            {
                byte* element = storage + at * sourceSize;
                var destination = buffer.AsSpan(filled, targetSize);
                if (sameType) CopyBits(element, sourceSize, bigEndian, destination);
                else Store(ToFloat(element, source, bigEndian), target, destination);
                filled += targetSize;
                if (filled == buffer.Length)
                {
                    output.Write(buffer, 0, filled);
                    filled = 0;
                }
            }
            for (int d = index.Length - 1; d >= 0; d--)
            {
                if (++index[d] < tensor.Shape[d]) break;
                index[d] = 0;
            }
        }
        output.Write(buffer, 0, filled);
    }

    private static bool SameType(StorageDType source, TensorDType target) => (source, target) switch
    {
        (StorageDType.Float32, TensorDType.F32) or (StorageDType.Float16, TensorDType.F16) or (StorageDType.BFloat16, TensorDType.BF16) => true,
        _ => false,
    };

    private static void CopyBits(byte* element, int size, bool bigEndian, Span<byte> destination)
    {
        new ReadOnlySpan<byte>(element, size).CopyTo(destination);
        if (bigEndian) destination.Reverse();
    }

    private static ulong Bits(byte* element, int size, bool bigEndian)
    {
        var bytes = new ReadOnlySpan<byte>(element, size);
        return size switch
        {
            1 => bytes[0],
            2 => bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(bytes) : BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            4 => bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            _ => bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(bytes) : BinaryPrimitives.ReadUInt64LittleEndian(bytes),
        };
    }

    /// <summary>One element as float32, as torch converts it (integers and doubles rounded to nearest).</summary>
    public static float ToFloat(byte* element, StorageDType dtype, bool bigEndian)
    {
        ulong bits = Bits(element, dtype.SizeInBytes(), bigEndian);
        return dtype switch
        {
            StorageDType.Float32 => BitConverter.UInt32BitsToSingle((uint)bits),
            StorageDType.Float16 => (float)BitConverter.UInt16BitsToHalf((ushort)bits),
            StorageDType.BFloat16 => BitConverter.UInt32BitsToSingle((uint)bits << 16),
            StorageDType.Float64 => (float)BitConverter.UInt64BitsToDouble(bits),
            StorageDType.Int64 => (long)bits,
            StorageDType.Int32 => (int)(uint)bits,
            StorageDType.Int16 => (short)(ushort)bits,
            StorageDType.Int8 => (sbyte)(byte)bits,
            StorageDType.UInt8 => (byte)bits,
            StorageDType.Bool => bits != 0 ? 1f : 0f,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
        };
    }

    private static void Store(float value, TensorDType target, Span<byte> destination)
    {
        switch (target)
        {
            case TensorDType.F32: BinaryPrimitives.WriteSingleLittleEndian(destination, value); break;
            case TensorDType.F16: BinaryPrimitives.WriteUInt16LittleEndian(destination, ToHalfBits(value)); break;
            default: BinaryPrimitives.WriteUInt16LittleEndian(destination, ToBFloat16Bits(value)); break;
        }
    }

    /// <summary>float32 -> float16 bits as c10's fp16_ieee_from_fp32_value: nearest even, NaN -> sign | 0x7E00.</summary>
    public static ushort ToHalfBits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16 & 0x8000) | 0x7E00);
        return BitConverter.HalfToUInt16Bits((Half)value);
    }

    /// <summary>float32 -> bfloat16 bits, nearest even; NaN -> 0xFFFF as ATen's AVX2/AVX-512 conversion writes it
    /// (what tensor.to(torch.bfloat16) gives on x86, checked by the dtypes fixture).</summary>
    public static ushort ToBFloat16Bits(float value)
    {
        if (float.IsNaN(value)) return 0xFFFF;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFF + (bits >> 16 & 1)) >> 16);
    }
}
