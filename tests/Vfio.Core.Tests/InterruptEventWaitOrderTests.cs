// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Shouldly;

namespace Vfio.Core.Tests;

/// <summary>
/// The order in which a wait looks at the eventfd: read first while counts tend to be pending when the wait starts,
/// poll (synchronous) or the armed poller (asynchronous) first while waits have to wait; and the asynchronous
/// registration that stays armed across waits until a signal arrives with no wait pending.
/// </summary>
public sealed class InterruptEventWaitOrderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // A synchronous wait that finds nothing pending and blocks until another thread signals.
    private static void BlockingWait(InterruptEvent evt)
    {
        using var signaller = new Timer(_ => evt.Signal(), null, 30, Timeout.Infinite);
        evt.TryWait(TimeSpan.FromSeconds(10), out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL);
    }

    private static Task<ulong> NextAsync(InterruptEvent evt) => evt.WaitAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);

    // An asynchronous wait that finds nothing pending and completes from the poller.
    private static async Task BlockingWaitAsync(InterruptEvent evt)
    {
        ValueTask<ulong> wait = evt.WaitAsync(Ct);
        wait.IsCompleted.ShouldBeFalse();
        evt.Signal();
        (await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).ShouldBe(1UL);
    }

    [Fact]
    public void Wait_AfterAWaitThatBlocked_PollsFirstAndStillReturnsThePendingCount()
    {
        using var evt = new InterruptEvent();
        evt.SyncReadsFirst.ShouldBeTrue();
        BlockingWait(evt);
        evt.SyncReadsFirst.ShouldBeFalse();
        evt.Signal(3);
        evt.Wait().ShouldBe(3UL);
        evt.TryWait(out _).ShouldBeFalse();
    }

    [Fact]
    public void Wait_PollingFirst_ProbesWithAReadAndReadsFirstAgainWhenCountsArePending()
    {
        using var evt = new InterruptEvent();
        BlockingWait(evt);
        int waits = 0;
        while (!evt.SyncReadsFirst)
        {
            waits.ShouldBeLessThan(16, "a read-first probe within 16 waits");
            evt.Signal();
            evt.Wait().ShouldBe(1UL);
            waits++;
        }
        waits.ShouldBeGreaterThan(1, "poll first until the probe");
        evt.Signal(2);
        evt.Wait().ShouldBe(2UL);
        evt.SyncReadsFirst.ShouldBeTrue();
    }

    [Fact]
    public void TryWait_PollingFirstWithAShortTimeout_SeesThePendingCountOrTimesOut()
    {
        using var evt = new InterruptEvent();
        BlockingWait(evt);
        evt.Signal();
        evt.TryWait(TimeSpan.FromMilliseconds(1), out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL);
        var watch = Stopwatch.StartNew();
        evt.TryWait(TimeSpan.FromMilliseconds(30), out count).ShouldBeFalse();
        watch.ElapsedMilliseconds.ShouldBeGreaterThanOrEqualTo(25);
        count.ShouldBe(0UL);
        evt.Signal(4);
        evt.TryWait(TimeSpan.Zero, out count).ShouldBeTrue();
        count.ShouldBe(4UL);
    }

    [Fact]
    public async Task Wait_PollingFirst_DisposedDuringTheWait_ThrowsObjectDisposed()
    {
        var evt = new InterruptEvent();
        BlockingWait(evt);
        Task waiter = Task.Factory.StartNew(() => evt.Wait(), Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await Task.Delay(50, Ct);
        evt.Dispose();
        await Should.ThrowAsync<ObjectDisposedException>(() => waiter.WaitAsync(TimeSpan.FromSeconds(10), Ct));
    }

    [Fact]
    public async Task Waits_DetachedWhilePollingOrArmedFirst_HandOutThePendingCountThenFail()
    {
        using var evt = new InterruptEvent();
        object device = new();
        evt.WireTo(device);
        BlockingWait(evt);
        await BlockingWaitAsync(evt);
        evt.SyncReadsFirst.ShouldBeFalse();
        evt.AsyncState.ReadsFirst.ShouldBeFalse();
        evt.Signal(2);
        evt.OnDeviceDetached(device, "edu 0000:00:02.0");
        // The signal may reach the poller first (which makes the next asynchronous wait read first); either way the
        // pending count comes out once, then both kinds of wait fail.
        ulong count = await evt.WaitAsync(Ct);
        count.ShouldBe(2UL);
        Should.Throw<ObjectDisposedException>(() => evt.Wait()).Message.ShouldContain("edu 0000:00:02.0");
        Should.Throw<ObjectDisposedException>(() => evt.WaitAsync(Ct)).Message.ShouldContain("edu 0000:00:02.0");
    }

    [Fact]
    public async Task WaitAsync_AfterAWaitThatWaited_StaysArmedAndNeedsNoRead()
    {
        using var poller = new FdPoller("test-poller");
        using var evt = new InterruptEvent(poller);
        evt.AsyncState.ShouldBe((true, false));
        await BlockingWaitAsync(evt);
        evt.AsyncState.ShouldBe((false, true));
        // The next wait goes straight to the armed poller; the signal after it completes it.
        await BlockingWaitAsync(evt);
        evt.AsyncState.ShouldBe((false, true));
    }

    [Fact]
    public async Task WaitAsync_SignalWithNoWaitPending_DisarmsAndTheNextWaitReadsFirst()
    {
        using var poller = new FdPoller("test-poller");
        using var evt = new InterruptEvent(poller);
        await BlockingWaitAsync(evt);
        evt.Signal(3);
        SpinWait.SpinUntil(() => !evt.AsyncState.Armed, TimeSpan.FromSeconds(10)).ShouldBeTrue("the poller disarms on a signal nobody waits for");
        evt.AsyncState.ReadsFirst.ShouldBeTrue();
        ValueTask<ulong> wait = evt.WaitAsync(Ct);
        wait.IsCompletedSuccessfully.ShouldBeTrue("the pending count is read at once");
        (await wait).ShouldBe(3UL);
        evt.AsyncState.ShouldBe((true, false));
    }

    [Fact]
    public async Task WaitAsync_PendingCountWhileArmedAndNotReadingFirst_IsStillDelivered()
    {
        using var poller = new FdPoller("test-poller");
        using var evt = new InterruptEvent(poller);
        for (int i = 0; i < 200; i++)
        {
            await BlockingWaitAsync(evt);
            // Signal before the next wait: the wait either reads it (the poller saw it first) or the poller reports it.
            evt.Signal(2);
            (await NextAsync(evt)).ShouldBe(2UL);
        }
        evt.TryWait(out _).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_CancelledWhileArmed_LeavesTheCountForTheNextWait()
    {
        using var evt = new InterruptEvent();
        await BlockingWaitAsync(evt);
        using var cts = new CancellationTokenSource();
        ValueTask<ulong> wait = evt.WaitAsync(cts.Token);
        await cts.CancelAsync();
        await Should.ThrowAsync<OperationCanceledException>(async () => await wait);
        evt.Signal(5);
        (await NextAsync(evt)).ShouldBe(5UL);
        evt.TryWait(out _).ShouldBeFalse();
    }

    [Fact]
    public async Task Waits_AlternatingKindsAgainstASignallingThread_NoneLostNoneExtra()
    {
        using var poller = new FdPoller("test-poller");
        using var evt = new InterruptEvent(poller);
        const int Signals = 3000;
        Task device = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Signals; i++)
            {
                evt.Signal();
                if (i % 7 == 0)
                {
                    Thread.Yield();
                }
            }
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ulong total = 0;
        for (int i = 0; total < Signals; i++)
        {
            if (i / 50 % 2 == 0)
            {
                total += await NextAsync(evt);
            }
            else
            {
                evt.TryWait(TimeSpan.FromSeconds(10), out ulong count).ShouldBeTrue();
                total += count;
            }
        }
        await device.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        total.ShouldBe((ulong)Signals);
        evt.TryWait(out _).ShouldBeFalse();
    }
}
