using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Loader.Checkpoint;
using Half = ILGPU.Half;
using NbpEngine.Core;

namespace NbpEngine.Kernels;

/// <summary>
/// One transformer block's weights on the device: matrices in the chosen storage, norms and biases fp32. The query,
/// key and value projections are one [3C, C] matrix (and one [3C] bias), so a step runs them as one GEMM.
/// </summary>
public struct DeviceLayer<TW> where TW : struct, IWeightView
{
    public ArrayView<float> Ln1Weight, Ln1Bias, Ln2Weight, Ln2Bias;
    public TW QueryKeyValue, Proj, Fc, Out;
    public ArrayView<float> QueryKeyValueBias, ProjBias, FcBias, OutBias;
    /// <summary>LN1 folded into the Q/K/V step GEMM and LN2 into the fc step GEMM, with the biases that go with them (<see cref="StepNorm"/>).</summary>
    public StepNorm QueryKeyValueNorm, FcNorm;
    public ArrayView<float> QueryKeyValueFoldedBias, FcFoldedBias;
}

/// <summary>
/// The transformer's weights uploaded once to an accelerator. Matrices and embeddings are stored as
/// <typeparamref name="TW"/> (fp32, fp16 or bf16); LayerNorm parameters and biases stay fp32.
/// </summary>
public sealed unsafe class DeviceWeights<TW> : IDisposable where TW : struct, IWeightView
{
    private const long UploadChunk = 1 << 22; // elements per host->device copy: bounded host scratch
    private readonly List<MemoryBuffer> _buffers = new();
    private readonly Accelerator _accelerator;

    public ModelConfig Config { get; }
    public TW TokenEmbedding { get; }
    public TW PositionEmbedding { get; }
    /// <summary>uncond_embedding [cond_token_num, C]; the token embedding (never read) when the checkpoint has none.</summary>
    public TW UnconditionalEmbedding { get; }
    /// <summary>Rows of <see cref="UnconditionalEmbedding"/> (0 when the checkpoint has none).</summary>
    public int UnconditionalRows { get; }
    public DeviceLayer<TW>[] Layers { get; }
    public ArrayView<float> LnFinalWeight { get; }
    public ArrayView<float> LnFinalBias { get; }
    public TW Head { get; }
    /// <summary>An unused one-element view passed where a kernel takes a bias it does not read.</summary>
    public ArrayView<float> NoBias { get; }
    /// <summary>The step GEMM's "no LayerNorm" argument (views that are never read).</summary>
    public StepNorm NoNorm { get; }
    /// <summary>
    /// Whether LN1 and LN2 are folded into the Q/K/V and fc step GEMMs (<see cref="DeviceLayer{TW}.QueryKeyValueNorm"/>):
    /// whenever the step GEMM takes K = C (C a multiple of 8); the constants are computed at upload only then.
    /// </summary>
    public bool NormsFolded { get; }
    public long DeviceBytes { get; private set; }

    public DeviceWeights(Accelerator accelerator, TransformerWeights weights)
    {
        _accelerator = accelerator;
        var cfg = weights.Config;
        Config = cfg;
        long c = cfg.EmbeddingSize, v = cfg.VocabSize;
        try
        {
            TokenEmbedding = Matrix([weights.TokenEmbedding], v * c);
            PositionEmbedding = Matrix([weights.PositionEmbedding], cfg.PositionCount * c);
            UnconditionalRows = weights.UnconditionalEmbedding == null ? 0 : cfg.CondTokenCount;
            UnconditionalEmbedding = UnconditionalRows == 0 ? TokenEmbedding : Matrix([weights.UnconditionalEmbedding], UnconditionalRows * c);
            NormsFolded = StepMatMulKernel.Fits(1, (int)c, (int)c);
            Layers = new DeviceLayer<TW>[cfg.LayerCount];
            for (int i = 0; i < cfg.LayerCount; i++)
            {
                var l = weights.Layers[i];
                Layers[i] = new DeviceLayer<TW>
                {
                    Ln1Weight = Floats([l.Ln1Weight], c), Ln1Bias = Floats([l.Ln1Bias], c),
                    QueryKeyValue = Matrix([l.QueryWeight, l.KeyWeight, l.ValueWeight], c * c),
                    QueryKeyValueBias = Floats([l.QueryBias, l.KeyBias, l.ValueBias], c),
                    Proj = Matrix([l.ProjWeight], c * c), ProjBias = Floats([l.ProjBias], c),
                    Ln2Weight = Floats([l.Ln2Weight], c), Ln2Bias = Floats([l.Ln2Bias], c),
                    Fc = Matrix([l.FcWeight], 4 * c * c), FcBias = Floats([l.FcBias], 4 * c),
                    Out = Matrix([l.OutWeight], 4 * c * c), OutBias = Floats([l.OutBias], c),
                };
                if (!NormsFolded) continue;
                (Layers[i].QueryKeyValueNorm, Layers[i].QueryKeyValueFoldedBias) =
                    Folded([l.QueryWeight, l.KeyWeight, l.ValueWeight], [l.QueryBias, l.KeyBias, l.ValueBias], c, Layers[i].Ln1Weight, l.Ln1Weight, l.Ln1Bias);
                (Layers[i].FcNorm, Layers[i].FcFoldedBias) = Folded([l.FcWeight], [l.FcBias], 4 * c, Layers[i].Ln2Weight, l.Ln2Weight, l.Ln2Bias);
            }
            LnFinalWeight = Floats([weights.LnFinalWeight], c);
            LnFinalBias = Floats([weights.LnFinalBias], c);
            Head = Matrix([weights.Head], v * c);
            NoBias = Track(_accelerator.Allocate1D<float>(1)).View;
            NoNorm = StepNorm.Off(NoBias);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private T Track<T>(T buffer) where T : MemoryBuffer
    {
        _buffers.Add(buffer);
        DeviceBytes += buffer.LengthInBytes;
        return buffer;
    }

    /// <summary>The sources (each <paramref name="count"/> values) one after another in one fp32 buffer.</summary>
    private ArrayView<float> Floats(float*[] sources, long count)
    {
        var buffer = Track(_accelerator.Allocate1D<float>(sources.Length * count));
        for (int i = 0; i < sources.Length; i++) Upload(sources[i], count, buffer.View.SubView(i * count, count), static f => f);
        return buffer.View;
    }

    /// <summary>
    /// A LayerNorm (γ <paramref name="gamma"/>, β <paramref name="beta"/>; γ already on the device as <paramref name="deviceGamma"/>)
    /// folded into the stacked matrices after it (each [rowsEach, C]): the step GEMM's <see cref="StepNorm"/> and bias.
    /// </summary>
    private (StepNorm Norm, ArrayView<float> Bias) Folded(float*[] matrices, float*[] biases, long rowsEach, ArrayView<float> deviceGamma, float* gamma, float* beta)
    {
        int c = Config.EmbeddingSize;
        var (sums, bias) = NormFolding.Fold(matrices, biases, rowsEach, c, gamma, beta, AsStored);
        var norm = new StepNorm { Enabled = 1, Gamma = deviceGamma.SubView(0, c / 4 * 4).Cast<Float4>(), ColumnSums = Upload(sums) };
        return (norm, Upload(bias));
    }

    /// <summary>A weight as the storage holds it (fp16/bf16 with round-to-nearest-even), back in fp32.</summary>
    public static float AsStored(float value) =>
        typeof(TW) == typeof(F16Weights) ? (float)(System.Half)value
        : typeof(TW) == typeof(BF16Weights) ? BitConverter.Int32BitsToSingle(ToBFloat16(value) << 16)
        : value;

    private ArrayView<float> Upload(float[] values)
    {
        var buffer = Track(_accelerator.Allocate1D<float>(values.Length));
        buffer.View.CopyFromCPU(_accelerator.DefaultStream, values);
        _accelerator.DefaultStream.Synchronize();
        return buffer.View;
    }

    /// <summary>The matrices (each <paramref name="count"/> values) stacked row-wise in one buffer of the storage type.</summary>
    private TW Matrix(float*[] sources, long count)
    {
        if (typeof(TW) == typeof(F32Weights)) return (TW)(object)new F32Weights(Floats(sources, count));
        if (typeof(TW) == typeof(F16Weights))
        {
            // fp16 bits from System.Half (round to nearest even, as torch); ILGPU's conversion truncates.
            var buffer = Track(_accelerator.Allocate1D<Half>(sources.Length * count));
            for (int i = 0; i < sources.Length; i++) Upload(sources[i], count, buffer.View.SubView(i * count, count), static f => ToHalf(f));
            return (TW)(object)new F16Weights(buffer.View);
        }
        if (typeof(TW) == typeof(BF16Weights))
        {
            var buffer = Track(_accelerator.Allocate1D<ushort>(sources.Length * count));
            for (int i = 0; i < sources.Length; i++) Upload(sources[i], count, buffer.View.SubView(i * count, count), ToBFloat16);
            return (TW)(object)new BF16Weights(buffer.View);
        }
        throw new NotSupportedException($"weight storage {typeof(TW).Name}");
    }

    /// <summary>fp32 -> fp16 with round-to-nearest-even, as torch's .half().</summary>
    public static Half ToHalf(float value)
    {
        ushort bits = BitConverter.HalfToUInt16Bits((System.Half)value);
        return System.Runtime.CompilerServices.Unsafe.As<ushort, Half>(ref bits);
    }

    /// <summary>fp32 -> bf16 with round-to-nearest-even, as torch's .to(torch.bfloat16).</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    private void Upload<T>(float* source, long count, ArrayView<T> destination, Func<float, T> convert) where T : unmanaged
    {
        var scratch = new T[Math.Min(count, UploadChunk)];
        for (long offset = 0; offset < count; offset += scratch.Length)
        {
            int n = (int)Math.Min(scratch.Length, count - offset);
            for (int i = 0; i < n; i++) scratch[i] = convert(source[offset + i]);
            destination.SubView(offset, n).CopyFromCPU(_accelerator.DefaultStream, new ReadOnlySpan<T>(scratch, 0, n));
        }
        _accelerator.DefaultStream.Synchronize();
    }

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }
}
