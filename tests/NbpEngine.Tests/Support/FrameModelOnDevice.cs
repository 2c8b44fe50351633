using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Runtime.Attention;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Tests.Support;

/// <summary>
/// The frame fixture model's weights (or another transformer file's) on ILGPU's CPU accelerator, and the fixture's prompt. With <c>multiprocessors</c> > 1 the
/// accelerator is a CPU device of that many two-warp multiprocessors, which run groups at the same time (the tests'
/// usual device has one, where groups run one after another and nothing can overtake anything).
/// </summary>
internal sealed class FrameModelOnDevice<TW> : IDisposable where TW : struct, IWeightView
{
    private readonly IlgpuDevice? _device;
    private readonly Context? _context;
    private readonly Accelerator _accelerator;
    private readonly LaunchShape _shape;
    private readonly KernelSet<TW> _kernels;
    private readonly DeviceWeights<TW> _deviceWeights;
    public TransformerWeights Weights { get; }
    public int[] Prompt { get; } = Fixtures.Tokens("frame_prompt.txt");

    public FrameModelOnDevice(int multiprocessors = 1, string? weightsPath = null)
    {
        if (multiprocessors == 1)
        {
            _device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
            (_accelerator, _shape) = (_device.Accelerator, _device.Shape);
        }
        else
        {
            // two warps a multiprocessor: a two-block step's GEMM takes groups of 64 threads
            _context = Context.Create(b => b.CPU(new CPUDevice(32, 2, multiprocessors)).EnableAlgorithms().Optimize(OptimizationLevel.O2));
            (_accelerator, _shape) = (_context.GetCPUDevice(0).CreateAccelerator(_context), new LaunchShape(32, 1));
        }
        var file = SafetensorsFile.Open(weightsPath ?? Fixtures.PathOf("frame_model.safetensors")); // owned by the weights from here
        Weights = TransformerWeights.Load(file, ModelConfigReader.Read(file, new ModelConfigOverrides(), NullLogger.Instance), NullLogger.Instance);
        _kernels = new KernelSet<TW>(_accelerator);
        _deviceWeights = new DeviceWeights<TW>(_accelerator, Weights);
    }

    public int Multiprocessors => _accelerator.NumMultiprocessors;

    /// <summary>
    /// Each of <paramref name="sequences"/> sequences prefilled with the prompt and its first block sampled greedily, then
    /// one 16-row step of all of them in one forward, on a session <paramref name="configure"/> has set up: each
    /// sequence's logits of that step, and the launches the step took.
    /// </summary>
    public (List<float[]> Logits, long Launches) StepAfterPrompt(int sequences, Action<DeviceSession<TW>> configure)
    {
        int v = Weights.Config.VocabSize;
        using var session = Session(sequences, Prompt.Length + 16, Prompt.Length, sequences * 16);
        configure(session);
        var ids = new int[sequences][];
        for (int s = 0; s < sequences; s++)
        {
            session.Forward(Prompt, [new SequenceFeed(s, Prompt.Length, AttentionMask.BlockCausal(Prompt.Length, 16), 16)]);
            session.Sample(s, new SamplingArgs { Greedy = 1 }, ids[s] = new int[16]);
        }
        long before = session.Launches;
        session.Forward(ids.SelectMany(x => x).ToArray(), Enumerable.Range(0, sequences).Select(s => new SequenceFeed(s, 16, AttentionMask.None, 16)).ToArray());
        long launches = session.Launches - before;
        var logits = Enumerable.Range(0, sequences).Select(s =>
        {
            var row = new float[16 * v];
            session.CopyLogits(s, row);
            return row;
        }).ToList();
        return (logits, launches);
    }

    public DeviceSession<TW> Session(int sequences, int capacity, int maxRows, int maxLogitRows) =>
        new(_accelerator, _shape, _kernels, _deviceWeights, sequences, capacity, maxRows, maxLogitRows);

    public void Dispose()
    {
        _deviceWeights.Dispose();
        if (_device is not null) _device.Dispose();
        else
        {
            _accelerator.Dispose();
            _context!.Dispose();
        }
        Weights.Dispose();
    }
}
