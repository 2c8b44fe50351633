using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Fused;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels;

/// <summary>Every kernel of the forward pass and sampling, compiled once per accelerator and weight storage.</summary>
public sealed class KernelSet<TW> where TW : struct, IWeightView
{
    public Action<AcceleratorStream, KernelConfig, ArrayView<int>, TW, TW, TW, ArrayView<float>, EmbeddingArgs> Embed { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormArgs> LayerNorm { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs> MatMul { get; }
    /// <summary>The tensor-core GEMM: mma.sync on CUDA, the lane-exact emulation elsewhere (<see cref="TensorCores.IMma"/>).</summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs> TensorCoreMatMul { get; }
    /// <summary>The step GEMM, with the LayerNorm before it folded in or off (<see cref="StepNorm"/>).</summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<Float4>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs, StepNorm> StepMatMul { get; }
    /// <summary>The step GEMM on tensor cores (<see cref="StepMmaKernel"/>), A in fp16 from <see cref="HalfRows"/>.</summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<Bits128>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs> StepMma { get; }
    /// <summary>A step's rows (LayerNormed when asked) rounded to fp16 for <see cref="StepMma"/>.</summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Bits128>, HalfRowsArgs> HalfRows { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs> Attention { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs> DecodeAttention { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs> DecodeAttentionCombine { get; }
    public SamplerKernels Sampler { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float> Guide { get; }
    /// <summary>A step's whole transformer layer in one launch (<see cref="LayerStepKernel"/>).</summary>
    public Action<AcceleratorStream, KernelConfig, LayerStepArgs<TW>> Layer { get; }

    public KernelSet(Accelerator accelerator)
    {
        Embed = accelerator.LoadKernel<ArrayView<int>, TW, TW, TW, ArrayView<float>, EmbeddingArgs>(EmbeddingKernel.Embed<TW>);
        LayerNorm = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormArgs>(LayerNormKernel.Normalize);
        MatMul = accelerator.LoadKernel<ArrayView<float>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs>(MatMulKernel.Tiled<TW>);
        TensorCoreMatMul = accelerator.AcceleratorType == AcceleratorType.Cuda
            ? accelerator.LoadKernel<ArrayView<float>, ArrayView<Float4>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs>(TensorCoreMatMulKernel.TensorCore<TW, PtxMma>)
            : accelerator.LoadKernel<ArrayView<float>, ArrayView<Float4>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs>(TensorCoreMatMulKernel.TensorCore<TW, EmulatedMma>);
        StepMatMul = accelerator.LoadKernel<ArrayView<Float4>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs, StepNorm>(StepMatMulKernel.Step<TW>);
        bool cuda = accelerator.AcceleratorType == AcceleratorType.Cuda;
        StepMma = cuda
            ? accelerator.LoadKernel<ArrayView<Bits128>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs>(StepMmaKernel.Step<TW, PtxMma>)
            : accelerator.LoadKernel<ArrayView<Bits128>, TW, ArrayView<float>, ArrayView<float>, MatMulArgs>(StepMmaKernel.Step<TW, EmulatedMma>);
        HalfRows = cuda
            ? accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Bits128>, HalfRowsArgs>(HalfRowsKernel.Pack<PtxMma>)
            : accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Bits128>, HalfRowsArgs>(HalfRowsKernel.Pack<EmulatedMma>);
        Attention = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(FlashAttentionKernel.Attend);
        DecodeAttention = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(DecodeAttentionKernel.Partial);
        DecodeAttentionCombine = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(DecodeAttentionKernel.Combine);
        Sampler = new SamplerKernels(accelerator);
        Guide = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, float>(GuidanceKernel.Blend);
        Layer = accelerator.LoadKernel<LayerStepArgs<TW>>(LayerStepKernel.Layer<TW>);
    }
}

/// <summary>The kernel entry points, for tools and the PTX compile test.</summary>
public static class KernelCatalog
{
    /// <summary>Every explicitly grouped kernel, generic ones closed over each weight storage, tensor-core ones over mma.sync (what CUDA runs).</summary>
    public static IEnumerable<MethodInfo> All()
    {
        Type[] storages = [typeof(F32Weights), typeof(F16Weights), typeof(BF16Weights)];
        foreach (var w in storages)
        {
            yield return typeof(EmbeddingKernel).GetMethod(nameof(EmbeddingKernel.Embed))!.MakeGenericMethod(w);
            yield return typeof(MatMulKernel).GetMethod(nameof(MatMulKernel.Tiled))!.MakeGenericMethod(w);
            yield return typeof(TensorCoreMatMulKernel).GetMethod(nameof(TensorCoreMatMulKernel.TensorCore))!.MakeGenericMethod(w, typeof(PtxMma));
            yield return typeof(StepMatMulKernel).GetMethod(nameof(StepMatMulKernel.Step))!.MakeGenericMethod(w);
            yield return typeof(StepMmaKernel).GetMethod(nameof(StepMmaKernel.Step))!.MakeGenericMethod(w, typeof(PtxMma));
            yield return typeof(LayerStepKernel).GetMethod(nameof(LayerStepKernel.Layer))!.MakeGenericMethod(w);
        }
        yield return typeof(LayerNormKernel).GetMethod(nameof(LayerNormKernel.Normalize))!;
        yield return typeof(HalfRowsKernel).GetMethod(nameof(HalfRowsKernel.Pack))!.MakeGenericMethod(typeof(PtxMma));
        yield return typeof(FlashAttentionKernel).GetMethod(nameof(FlashAttentionKernel.Attend))!;
        yield return typeof(DecodeAttentionKernel).GetMethod(nameof(DecodeAttentionKernel.Partial))!;
        yield return typeof(DecodeAttentionKernel).GetMethod(nameof(DecodeAttentionKernel.Combine))!;
        foreach (string entry in SamplerKernels.EntryNames) yield return typeof(SamplingKernel).GetMethod(entry)!;
        yield return typeof(GuidanceKernel).GetMethod(nameof(GuidanceKernel.Blend))!;
        yield return typeof(Tokenizer.Conv3dKernel).GetMethod(nameof(Tokenizer.Conv3dKernel.Conv))!;
        yield return typeof(Tokenizer.TensorCoreConv3dKernel).GetMethod(nameof(Tokenizer.TensorCoreConv3dKernel.Conv))!.MakeGenericMethod(typeof(PtxMma), typeof(Tokenizer.ConvWindowSource));
        yield return typeof(Tokenizer.TensorCoreConv3dKernel).GetMethod(nameof(Tokenizer.TensorCoreConv3dKernel.Conv))!.MakeGenericMethod(typeof(PtxMma), typeof(Tokenizer.ConvGatherSource));
        yield return typeof(Tokenizer.GroupNormSwishKernel).GetMethod(nameof(Tokenizer.GroupNormSwishKernel.Normalize))!;
        yield return typeof(Tokenizer.FsqKernel).GetMethod(nameof(Tokenizer.FsqKernel.Codes))!;
        yield return typeof(Tokenizer.FsqKernel).GetMethod(nameof(Tokenizer.FsqKernel.Quantize))!;
    }
}
