// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Shouldly;

namespace Vfio.Core.Tests;

public sealed class InterruptEventTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void Wait_AfterSignals_ReturnsAccumulatedCount()
    {
        using var evt = new InterruptEvent();
        evt.Signal();
        evt.Signal(2);
        evt.Wait().ShouldBe(3UL);
        evt.TryWait(out ulong none).ShouldBeFalse();
        none.ShouldBe(0UL);
    }

    [Fact]
    public void TryWait_Timeout_ReturnsFalseAfterTheTimeout()
    {
        using var evt = new InterruptEvent();
        var watch = Stopwatch.StartNew();
        evt.TryWait(TimeSpan.FromMilliseconds(50), out ulong count).ShouldBeFalse();
        watch.ElapsedMilliseconds.ShouldBeGreaterThanOrEqualTo(45);
        count.ShouldBe(0UL);
    }

    [Fact]
    public void Wait_SignalFromAnotherThread_Wakes()
    {
        using var evt = new InterruptEvent();
        using var signaller = new Timer(_ => evt.Signal(), null, 20, Timeout.Infinite);
        evt.TryWait(TimeSpan.FromSeconds(10), out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL);
    }

    [Fact]
    public async Task WaitAsync_AlreadySignalled_CompletesSynchronously()
    {
        using var evt = new InterruptEvent();
        evt.Signal(5);
        ValueTask<ulong> wait = evt.WaitAsync(Ct);
        wait.IsCompletedSuccessfully.ShouldBeTrue();
        (await wait).ShouldBe(5UL);
    }

    [Fact]
    public async Task WaitAsync_SignalLater_Completes()
    {
        using var evt = new InterruptEvent();
        ValueTask<ulong> wait = evt.WaitAsync(Ct);
        wait.IsCompleted.ShouldBeFalse();
        evt.Signal();
        (await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).ShouldBe(1UL);
    }

    [Fact]
    public async Task WaitAsync_Cancelled_ThrowsAndKeepsLaterSignalsForTheNextWait()
    {
        using var evt = new InterruptEvent();
        using var cts = new CancellationTokenSource();
        ValueTask<ulong> wait = evt.WaitAsync(cts.Token);
        await cts.CancelAsync();
        await Should.ThrowAsync<OperationCanceledException>(async () => await wait);
        evt.Signal(4);
        (await evt.WaitAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).ShouldBe(4UL);
    }

    [Fact]
    public async Task WaitAsync_AlreadyCancelledToken_ThrowsWithoutConsuming()
    {
        using var evt = new InterruptEvent();
        evt.Signal();
        await Should.ThrowAsync<OperationCanceledException>(async () => await evt.WaitAsync(new CancellationToken(canceled: true)));
        evt.Wait().ShouldBe(1UL);
    }

    [Fact]
    public async Task WaitAsync_DisposedDuringWait_ThrowsObjectDisposed()
    {
        var evt = new InterruptEvent();
        ValueTask<ulong> wait = evt.WaitAsync(Ct);
        evt.Dispose();
        await Should.ThrowAsync<ObjectDisposedException>(async () => await wait);
        Should.Throw<ObjectDisposedException>(() => evt.WaitAsync(Ct));
        Should.Throw<ObjectDisposedException>(() => evt.Signal());
    }

    [Fact]
    public async Task Wait_DisposedDuringWait_ThrowsObjectDisposed()
    {
        var evt = new InterruptEvent();
        Task waiter = Task.Factory.StartNew(() => evt.Wait(), Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await Task.Delay(50, Ct);
        evt.Dispose();
        await Should.ThrowAsync<ObjectDisposedException>(() => waiter.WaitAsync(TimeSpan.FromSeconds(10), Ct));
    }

    [Fact]
    public async Task WaitAsync_SecondConcurrentWait_ThrowsInvalidOperation()
    {
        using var evt = new InterruptEvent();
        ValueTask<ulong> first = evt.WaitAsync(Ct);
        Should.Throw<InvalidOperationException>(() => evt.WaitAsync(Ct));
        evt.Signal();
        (await first).ShouldBe(1UL);
    }

    [Fact]
    public async Task WaitAsync_ThousandInterruptsFromAnotherThread_NoneLostNoneExtra()
    {
        using var evt = new InterruptEvent();
        using var ack = new InterruptEvent();
        const int Interrupts = 1000;
        // The "device" raises one interrupt, then waits for the driver's acknowledgement, like edu with INTx.
        Task device = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Interrupts; i++)
            {
                evt.Signal();
                ack.TryWait(TimeSpan.FromSeconds(10), out ulong acked).ShouldBeTrue();
                acked.ShouldBe(1UL);
            }
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ulong total = 0;
        for (int i = 0; i < Interrupts; i++)
        {
            total += await evt.WaitAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
            ack.Signal();
        }
        await device.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        total.ShouldBe((ulong)Interrupts);
        evt.TryWait(out _).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_BurstsFromAnotherThread_CountsAddUp()
    {
        using var evt = new InterruptEvent();
        const int Signals = 20000;
        Task device = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Signals; i++)
            {
                evt.Signal();
            }
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ulong total = 0;
        while (total < Signals)
        {
            total += await evt.WaitAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
        }
        await device;
        total.ShouldBe((ulong)Signals);
    }

    [Fact]
    public void Signal_InvalidCounts_Throw()
    {
        using var evt = new InterruptEvent();
        Should.Throw<ArgumentOutOfRangeException>(() => evt.Signal(0));
        Should.Throw<ArgumentOutOfRangeException>(() => evt.Signal(ulong.MaxValue));
    }

    [Fact]
    public async Task PrivatePoller_Disposed_ThreadStops()
    {
        var poller = new FdPoller("test-poller");
        using (var evt = new InterruptEvent(poller))
        {
            ValueTask<ulong> wait = evt.WaitAsync(Ct);
            evt.Signal();
            (await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).ShouldBe(1UL);
        }
        poller.Dispose();
        poller.Dispose();
    }

    [Fact]
    public async Task WaitAsync_IdlePoller_RunsTheContinuationOnThePollerThreadThatReceivedTheEvent()
    {
        using var poller = new FdPoller("test-poller");
        using var evt = new InterruptEvent(poller);
        var seen = new List<string?>();
        // A round counts only when the await registered its continuation before the signal; on a slow machine (the
        // guest under TCG) the signal can win, and the await then goes on where it is. At most 5 rounds.
        for (int round = 0; round < 5 && !seen.Contains("test-poller"); round++)
        {
            seen.Add(await Task.Run(async () =>
            {
                ValueTask<ulong> wait = evt.WaitAsync(Ct);
                wait.IsCompleted.ShouldBeFalse();
                // Signalled later from elsewhere, so the await has registered its continuation by then.
                using var signaller = new Timer(_ => evt.Signal(), null, 200, Timeout.Infinite);
                bool signalledFirst = wait.IsCompleted;
                await wait.ConfigureAwait(false);
                return signalledFirst ? null : Thread.CurrentThread.Name;
            }, Ct).WaitAsync(TimeSpan.FromSeconds(10), Ct));
        }
        // No hand-off to the thread pool: the thread woken by the interrupt ran the continuation (its sibling polled).
        seen.ShouldContain("test-poller", $"resumed on: {string.Join(", ", seen.Select(static n => n ?? "(signalled before the await)"))}");
    }

    [Fact]
    public async Task WaitAsync_ContinuationsThatBlock_DoNotHoldUpOtherInterrupts()
    {
        using var poller = new FdPoller("test-poller");
        using var first = new InterruptEvent(poller);
        using var second = new InterruptEvent(poller);
        using var other = new InterruptEvent(poller);
        using var release = new ManualResetEventSlim();
        using var blocking = new CountdownEvent(2);
        // Two continuations that block: whichever runs on a poller thread must leave the other one polling.
        Task Blocker(InterruptEvent e) => Task.Run(async () =>
        {
            await e.WaitAsync(Ct).ConfigureAwait(false);
            blocking.Signal();
            release.Wait(Ct);
        }, Ct);
        Task a = Blocker(first);
        Task b = Blocker(second);
        SpinWait.SpinUntil(() => first.AsyncWaitPending && second.AsyncWaitPending, TimeSpan.FromSeconds(10)).ShouldBeTrue();
        first.Signal();
        second.Signal();
        blocking.Wait(TimeSpan.FromSeconds(10), Ct).ShouldBeTrue();
        for (int i = 0; i < 3; i++)
        {
            ValueTask<ulong> wait = other.WaitAsync(Ct);
            other.Signal();
            (await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).ShouldBe(1UL);
        }
        release.Set();
        await Task.WhenAll(a, b).WaitAsync(TimeSpan.FromSeconds(10), Ct);
    }

    [Fact]
    public void Adopt_ForeignEventfd_SignalsAndWaitsOnTheSameCounter()
    {
        using var original = new InterruptEvent();
        using var borrowed = new InterruptEvent(original.Handle, ownsHandle: false);
        borrowed.Signal(3);
        original.Wait().ShouldBe(3UL);
        borrowed.Dispose();
        // Borrowed: disposing the wrapper left the fd open.
        original.Signal();
        original.Wait().ShouldBe(1UL);
    }

    [Fact]
    public void Adopt_NotAnEventfd_Throws()
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle memfd = TestFiles.MemFd(8);
        Should.Throw<ArgumentException>(() => new InterruptEvent(memfd, ownsHandle: false)).Message.ShouldContain("not an eventfd");
    }
}
