using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Sampling;

/// <summary>
/// The sampler's kernels, compiled once per accelerator, and the chain of launches that draws one token a row
/// (<see cref="SamplingKernel"/>): greedy is one launch; a filtered draw is Scale, the top-k search's 7 further levels
/// (when k cuts), Weigh, the top-p search's 7 further levels and Cut (when p &lt; 1), Survivors and Draw: 4 to 19.
/// </summary>
public sealed class SamplerKernels
{
    private readonly Action<AcceleratorStream, KernelConfig, SamplerViews, SamplingArgs> _argMax, _scale, _topKLevel, _weigh, _topPLevel, _cut, _survivors, _draw;

    public SamplerKernels(Accelerator accelerator)
    {
        _argMax = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.ArgMax);
        _scale = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.Scale);
        _topKLevel = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.TopKLevel);
        _weigh = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.Weigh);
        _topPLevel = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.TopPLevel);
        _cut = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.Cut);
        _survivors = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.Survivors);
        _draw = accelerator.LoadKernel<SamplerViews, SamplingArgs>(SamplingKernel.Draw);
    }

    /// <summary>The kernels' entry points, in launch order (for the PTX and SASS checks).</summary>
    public static IEnumerable<string> EntryNames =>
        [nameof(SamplingKernel.ArgMax), nameof(SamplingKernel.Scale), nameof(SamplingKernel.TopKLevel), nameof(SamplingKernel.Weigh),
         nameof(SamplingKernel.TopPLevel), nameof(SamplingKernel.Cut), nameof(SamplingKernel.Survivors), nameof(SamplingKernel.Draw)];

    /// <summary>
    /// Groups per row: the smallest power of two that gives every multiprocessor two groups, at most one chunk a group.
    /// </summary>
    public static int Slices(int rows, int multiprocessors)
    {
        int slices = 1;
        while (slices < SamplingMath.MassChunks && (long)rows * slices < 2L * multiprocessors) slices *= 2;
        return slices;
    }

    /// <summary>
    /// Draws a token for each of <paramref name="rows"/> rows of <paramref name="views"/>' logits into its Tokens, with
    /// groups of <paramref name="group"/> threads (a power of two, 16 to <see cref="SamplingKernel.MaxGroupSize"/>).
    /// <paramref name="launched"/> is told each launch's kernel name, in order.
    /// </summary>
    public void Sample(AcceleratorStream stream, int rows, int group, int multiprocessors, SamplerViews views, SamplingArgs args, Action<string>? launched = null)
    {
        if (group < DigitSums.Candidates + 1 || group > SamplingKernel.MaxGroupSize || (group & (group - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"the sampler needs a power-of-two group of 16 to {SamplingKernel.MaxGroupSize} threads");
        var perRow = new KernelConfig(rows, group);
        if (args.Greedy != 0)
        {
            Launch(_argMax, nameof(SamplingKernel.ArgMax), perRow);
            return;
        }
        if (args.Slices == 0) args.Slices = Slices(rows, multiprocessors);
        if (args.Slices < 1 || args.Slices > SamplingMath.MassChunks || (args.Slices & (args.Slices - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(args), args.Slices, $"slices must be a power of two from 1 to {SamplingMath.MassChunks}");
        var sliced = new KernelConfig(rows * args.Slices, group);
        Launch(_scale, nameof(SamplingKernel.Scale), sliced);
        if (args.TopKActive)
            for (int level = 1; level < SamplingKernel.Levels; level++) Launch(_topKLevel, nameof(SamplingKernel.TopKLevel), sliced, level);
        Launch(_weigh, nameof(SamplingKernel.Weigh), sliced);
        if (args.TopP < 1f)
        {
            for (int level = 1; level < SamplingKernel.Levels; level++) Launch(_topPLevel, nameof(SamplingKernel.TopPLevel), sliced, level);
            Launch(_cut, nameof(SamplingKernel.Cut), sliced);
        }
        Launch(_survivors, nameof(SamplingKernel.Survivors), sliced);
        Launch(_draw, nameof(SamplingKernel.Draw), perRow);

        void Launch(Action<AcceleratorStream, KernelConfig, SamplerViews, SamplingArgs> kernel, string name, KernelConfig config, int level = 0)
        {
            kernel(stream, config, views, args with { Level = level });
            launched?.Invoke(name);
        }
    }
}
