using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tests;

public class WorkerPoolTests
{
    private sealed class CountingWork(int tasks) : IParallelWork
    {
        public readonly int[] Hits = new int[tasks];
        public int FailAt { get; init; } = -1;
        public void Execute(int task, int worker)
        {
            if (task == FailAt) throw new InvalidOperationException("task failed on purpose");
            Interlocked.Increment(ref Hits[task]);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 100)]
    [InlineData(4, 1000)]
    public void EveryTaskRunsExactlyOnce(int threads, int tasks)
    {
        using var pool = new WorkerPool(threads);
        for (int round = 0; round < 50; round++)
        {
            var work = new CountingWork(tasks);
            pool.Run(work, tasks);
            Assert.All(work.Hits, h => Assert.Equal(1, h));
        }
    }

    [Fact]
    public void AFailingTaskSurfacesOnTheCallerAndThePoolStaysUsable()
    {
        using var pool = new WorkerPool(2);
        var e = Assert.Throws<InvalidOperationException>(() => pool.Run(new CountingWork(64) { FailAt = 40 }, 64));
        Assert.Contains("on purpose", e.Message);
        var work = new CountingWork(64);
        pool.Run(work, 64);
        Assert.All(work.Hits, h => Assert.Equal(1, h));
    }
}
