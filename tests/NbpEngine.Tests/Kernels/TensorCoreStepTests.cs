using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// <see cref="DeviceSession{TW}.TensorCoreSteps"/> on the frame fixture model (ILGPU's CPU accelerator, the
/// lane-exact mma emulation): a step's logits stay within fp16 rounding of the FMA kernels', and a sequence gets the
/// same bits batched or alone.
/// </summary>
public class TensorCoreStepTests
{
    /// <summary>One 16-row step after the prompt for each of <paramref name="sequences"/> sequences; each one's logits.</summary>
    private static List<float[]> Step(FrameModelOnDevice<F16Weights> frame, int sequences, bool tensorCores)
    {
        var (logits, launches) = frame.StepAfterPrompt(sequences, session => session.TensorCoreSteps = tensorCores);
        // per layer: q/k/v, proj, fc and out each a rounding launch and a GEMM launch, plus the two attention launches;
        // then the embedding, the final norm, and the head's two
        if (tensorCores && sequences == 1) Assert.Equal(10L * frame.Weights.Config.LayerCount + 4, launches);
        return logits;
    }

    /// <remarks>One test, one fixture model: each case builds a session and runs a prefill on the CPU accelerator.</remarks>
    [Fact]
    public void AStepOnTensorCoresStaysWithinFp16RoundingOfTheFmaKernelsAndABatchedRowGetsTheBitsItGetsAlone()
    {
        using var frame = new FrameModelOnDevice<F16Weights>();
        var fma = Step(frame, 1, tensorCores: false)[0];
        var alone = Step(frame, 1, tensorCores: true)[0];
        Assert.False(fma.AsSpan().SequenceEqual(alone), "the tensor-core step changed no bit: did it reach the GEMMs?");
        float largest = fma.Max(MathF.Abs), difference = fma.Zip(alone, (x, y) => MathF.Abs(x - y)).Max();
        Assert.InRange(difference / largest, 0, 2e-3); // 3.2e-4 when written
        var batched = Step(frame, 2, tensorCores: true);
        for (int s = 0; s < 2; s++)
            Assert.True(batched[s].AsSpan().SequenceEqual(alone), $"sequence {s} of the batch: logits differ from the sequence's alone on tensor cores");
    }

    [Fact]
    public void K600sSplitsComeFromEachGemmsShape()
    {
        Assert.Equal(4, StepMmaKernel.Splits(4608, 1536, 132));
        Assert.Equal(4, StepMmaKernel.Splits(6144, 1536, 132));
        Assert.Equal(8, StepMmaKernel.Splits(1536, 1536, 132));
        Assert.Equal(8, StepMmaKernel.Splits(1536, 6144, 132));
        Assert.Equal(1, StepMmaKernel.Splits(64000, 1536, 132)); // the head: 4000 column warps already
        Assert.Equal(1, StepMmaKernel.Splits(96, 96, 1)); // 3 slices: too few to split
        Assert.Equal(32, StepMmaKernel.MaxRows(8));
        Assert.Throws<ArgumentOutOfRangeException>(() => StepMmaKernel.Launch(96, 33, 256, splits: 8));
    }
}
