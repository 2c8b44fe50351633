using System.Runtime.InteropServices;
using System.Text;
using NbpEngine.Loader.IO;

namespace NbpEngine.Cli.IO;

/// <summary>Writes a little-endian float32 array as NumPy .npy (format 1.0).</summary>
public static class NpyWriter
{
    /// <summary>Writes under a temporary name, renamed when complete.</summary>
    public static void WriteFloat32(string path, float[] data, params int[] shape)
    {
        long count = 1;
        foreach (var d in shape) count *= d;
        if (count != data.Length) throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values, data has {data.Length}");
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + dict.Length + 1;
        int padded = (total + 63) / 64 * 64;
        string header = dict + new string(' ', padded - total) + "\n";
        OutputPath.WriteAtomically(path, file =>
        {
            file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
            file.Write(BitConverter.GetBytes((ushort)header.Length));
            file.Write(Encoding.ASCII.GetBytes(header));
            file.Write(MemoryMarshal.AsBytes(data.AsSpan()));
        });
    }
}
