// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests;

/// <summary>Allocation measurements run alone: nothing else in the process may allocate meanwhile.</summary>
[CollectionDefinition(DisableParallelization = true)]
public sealed class AllocationCollection;

[Collection(typeof(AllocationCollection))]
public sealed class InterruptEventAllocationTests
{
    private const int Waits = 10_000;

    [Fact]
    public void Wait_SteadyState_AllocatesNothing()
    {
        using var evt = new InterruptEvent();
        evt.Signal();
        evt.Wait();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Waits; i++)
        {
            evt.Signal();
            evt.Wait();
        }
        (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_SteadyState_AllocatesNothing()
    {
        const int Rounds = 3;
        using var evt = new InterruptEvent();
        using var ack = new InterruptEvent();
        var device = new Thread(() =>
        {
            for (int i = 0; i < Rounds * Waits + 100; i++)
            {
                evt.Signal();
                ack.Wait();
            }
        }) { IsBackground = true };
        device.Start();

        // The waiting side is one async method run to completion on the thread pool. An await resumes on another
        // thread, so a per-thread counter cannot follow it: the process-wide precise counter is measured instead,
        // which also covers the poller thread and the thread-pool hand-off. On a busy machine the runtime itself
        // allocates now and then (a thread-pool thread injected, a timer), so the least of three rounds is taken: an
        // allocation per wait would show in every round.
        long leastPerRound = await Task.Run(async () =>
        {
            for (int i = 0; i < 100; i++)
            {
                await evt.WaitAsync().ConfigureAwait(false);
                ack.Signal();
            }
            long least = long.MaxValue;
            for (int round = 0; round < Rounds; round++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                for (int i = 0; i < Waits; i++)
                {
                    await evt.WaitAsync().ConfigureAwait(false);
                    ack.Signal();
                }
                least = Math.Min(least, GC.GetTotalAllocatedBytes(precise: true) - before);
            }
            return least;
        }, TestContext.Current.CancellationToken);

        device.Join(TimeSpan.FromSeconds(30)).ShouldBeTrue();
        // The smallest object is 24 bytes: less than one byte per wait means no wait allocated.
        leastPerRound.ShouldBeLessThan(Waits);
    }
}
