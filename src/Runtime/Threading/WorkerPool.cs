using System.Runtime.ExceptionServices;

namespace NbpEngine.Runtime.Threading;

/// <summary>Work split into numbered tasks; Execute's worker argument indexes per-thread scratch.</summary>
public interface IParallelWork
{
    void Execute(int task, int worker);
}

/// <summary>
/// A fixed set of threads that run <see cref="IParallelWork"/> tasks, handed out by an atomic counter.
/// Unlike Parallel.For it allocates nothing per dispatch, which keeps generation steps allocation-free.
/// The calling thread takes part as worker 0. One dispatch at a time: a pool belongs to one session.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    // A SemaphoreSlim, not a ManualResetEventSlim: the latter allocates its lock object lazily the first
    // time a wait really blocks, which can happen long after warm-up and breaks allocation-free steps.
    private readonly SemaphoreSlim _done = new(0);
    private IParallelWork? _work;
    private int _taskCount;
    private int _nextTask;
    private int _running;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Most worker threads a pool takes (each has its own stack and scratch; more than cores only slows work down).</summary>
    public const int MaxThreads = 256;
    private readonly long[] _helperAllocatedBytes;

    public int ThreadCount { get; }

    public WorkerPool(int threadCount)
    {
        if (threadCount < 1 || threadCount > MaxThreads) throw new ArgumentOutOfRangeException(nameof(threadCount), threadCount, $"1 to {MaxThreads} threads");
        ThreadCount = threadCount;
        _threads = new Thread[threadCount - 1];
        _wake = new SemaphoreSlim[threadCount - 1];
        _helperAllocatedBytes = new long[threadCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0);
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"nbp-worker-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs tasks 0..taskCount-1 on all threads and returns when every one has finished.</summary>
    public void Run(IParallelWork work, int taskCount)
    {
        if (taskCount <= 0) return;
        int helpers = Math.Min(_threads.Length, taskCount - 1);
        if (helpers == 0)
        {
            for (int t = 0; t < taskCount; t++) work.Execute(t, 0);
            return;
        }
        _work = work;
        _taskCount = taskCount;
        _nextTask = 0;
        _failure = null;
        _running = helpers;
        for (int i = 0; i < helpers; i++) _wake[i].Release();
        Drain(0);
        _done.Wait(); // spins briefly before blocking: helpers usually finish within microseconds of us

        _work = null;
        _failure?.Throw();
    }

    private void Drain(int worker)
    {
        var work = _work!;
        try
        {
            int t;
            while ((t = Interlocked.Increment(ref _nextTask) - 1) < _taskCount) work.Execute(t, worker);
        }
        catch (Exception e)
        {
            _failure ??= ExceptionDispatchInfo.Capture(e);
            _nextTask = int.MaxValue / 2; // stop handing out tasks
        }
    }

    private void WorkerLoop(int worker)
    {
        var wake = _wake[worker - 1];
        while (true)
        {
            wake.Wait();
            if (_stopping) return;
            Drain(worker);
            Volatile.Write(ref _helperAllocatedBytes[worker - 1], GC.GetAllocatedBytesForCurrentThread());
            if (Interlocked.Decrement(ref _running) == 0) _done.Release();
        }
    }

    /// <summary>
    /// Managed bytes the helper threads have allocated in their lifetime, as of their last dispatch.
    /// With the caller's GC.GetAllocatedBytesForCurrentThread this accounts for every thread of a step.
    /// </summary>
    public long HelperAllocatedBytes
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _helperAllocatedBytes.Length; i++) sum += Volatile.Read(ref _helperAllocatedBytes[i]);
            return sum;
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        foreach (var w in _wake) w.Release();
        foreach (var t in _threads) t.Join();
        foreach (var w in _wake) w.Dispose();
        _done.Dispose();
    }
}
