// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Time.Testing;
using Shouldly;

namespace Vfio.Devices.Platform.Tests;

/// <summary>Every transition of <see cref="PlatformEoiStateMachine"/>, on a fake clock.</summary>
public sealed class EoiStateMachineTests : IDisposable
{
    private static TimeSpan Quiet => TimeSpan.FromMilliseconds(1100);
    private readonly FakeTimeProvider _clock = new();
    private readonly RecordingHost _host = new();
    private readonly PlatformEoiStateMachine _eoi;

    public EoiStateMachineTests() => _eoi = new PlatformEoiStateMachine(4, _host, _clock, Quiet);

    public void Dispose() => _eoi.Dispose();

    [Fact]
    public void Starts_AllInactive_OnTheFastPath()
    {
        for (int i = 0; i < 4; i++)
        {
            _eoi.GetState(i).ShouldBe(PlatformIrqState.Inactive);
        }
        _eoi.ActiveIrq.ShouldBe(-1);
        _eoi.PendingCount.ShouldBe(0);
        _eoi.IsFastPath.ShouldBeTrue();
        _eoi.IrqCount.ShouldBe(4);
        _host.Log.ShouldBeEmpty();
    }

    [Fact]
    public void Interrupt_WhenIdle_ActivatesInjectsAndEntersTheSlowPath()
    {
        _eoi.Interrupt(2).ShouldBe(PlatformIrqState.Active);
        _eoi.GetState(2).ShouldBe(PlatformIrqState.Active);
        _eoi.ActiveIrq.ShouldBe(2);
        _eoi.IsFastPath.ShouldBeFalse();
        _host.Log.ShouldBe(["inject 2", "slow"]);
    }

    [Fact]
    public void Interrupt_WhileAnotherIsActive_QueuesItPending()
    {
        _eoi.Interrupt(0);
        _eoi.Interrupt(1).ShouldBe(PlatformIrqState.Pending);
        _eoi.GetState(1).ShouldBe(PlatformIrqState.Pending);
        _eoi.PendingCount.ShouldBe(1);
        _eoi.ActiveIrq.ShouldBe(0);
        _host.Log.ShouldBe(["inject 0", "slow"]);
    }

    [Fact]
    public void Interrupt_OfTheActiveIrq_IsAbsorbed()
    {
        _eoi.Interrupt(0);
        _eoi.Interrupt(0).ShouldBe(PlatformIrqState.Active);
        _eoi.PendingCount.ShouldBe(0);
        _host.Log.ShouldBe(["inject 0", "slow"]);
    }

    [Fact]
    public void Interrupt_OfAPendingIrq_IsAbsorbed_NotQueuedTwice()
    {
        _eoi.Interrupt(0);
        _eoi.Interrupt(3);
        _eoi.Interrupt(3).ShouldBe(PlatformIrqState.Pending);
        _eoi.PendingCount.ShouldBe(1);
        _eoi.RegionAccess().ShouldBe(0);
        _eoi.RegionAccess().ShouldBe(3);
        _eoi.ActiveIrq.ShouldBe(-1);
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0", "inject 3", "complete 3"]);
    }

    [Fact]
    public void RegionAccess_EndsTheActiveIrq()
    {
        _eoi.Interrupt(1);
        _eoi.RegionAccess().ShouldBe(1);
        _eoi.GetState(1).ShouldBe(PlatformIrqState.Inactive);
        _eoi.ActiveIrq.ShouldBe(-1);
        _eoi.IsFastPath.ShouldBeFalse("the slow path lasts until the quiet period ends");
        _host.Log.ShouldBe(["inject 1", "slow", "complete 1"]);
    }

    [Fact]
    public void RegionAccess_WithNothingActive_DoesNothing()
    {
        _eoi.RegionAccess().ShouldBe(-1);
        _host.Log.ShouldBeEmpty();
        _eoi.IsFastPath.ShouldBeTrue();
    }

    [Fact]
    public void RegionAccess_InjectsThePendingIrqs_InFifoOrder_OnePerAccess()
    {
        _eoi.Interrupt(3);
        _eoi.Interrupt(1);
        _eoi.Interrupt(0);
        _eoi.Interrupt(2);
        _eoi.PendingCount.ShouldBe(3);
        _eoi.RegionAccess().ShouldBe(3);
        _eoi.ActiveIrq.ShouldBe(1);
        _eoi.GetState(0).ShouldBe(PlatformIrqState.Pending);
        _eoi.RegionAccess().ShouldBe(1);
        _eoi.RegionAccess().ShouldBe(0);
        _eoi.RegionAccess().ShouldBe(2);
        _eoi.RegionAccess().ShouldBe(-1);
        _eoi.PendingCount.ShouldBe(0);
        _host.Log.ShouldBe(["inject 3", "slow", "complete 3", "inject 1", "complete 1", "inject 0", "complete 0", "inject 2", "complete 2"]);
    }

    [Fact]
    public void Interrupt_AfterTheEoi_InTheSlowPath_ActivatesWithoutASecondPathSwitch()
    {
        _eoi.Interrupt(0);
        _eoi.RegionAccess();
        _eoi.Interrupt(0).ShouldBe(PlatformIrqState.Active);
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0", "inject 0"]);
    }

    [Fact]
    public void QuietPeriod_WithNoActiveIrq_RestoresTheFastPath()
    {
        _eoi.Interrupt(0);
        _eoi.RegionAccess();
        _clock.Advance(Quiet - TimeSpan.FromMilliseconds(1));
        _eoi.IsFastPath.ShouldBeFalse();
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        _eoi.IsFastPath.ShouldBeTrue();
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0", "fast"]);
    }

    [Fact]
    public void QuietPeriod_WhileAnIrqIsActive_IsRearmed_UntilItEnds()
    {
        _eoi.Interrupt(0);
        _clock.Advance(Quiet);
        _eoi.IsFastPath.ShouldBeFalse("IRQ 0 is still active");
        _clock.Advance(Quiet - TimeSpan.FromMilliseconds(1));
        _eoi.RegionAccess();
        _eoi.IsFastPath.ShouldBeFalse();
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        _eoi.IsFastPath.ShouldBeTrue("the re-armed period found no active IRQ");
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0", "fast"]);
    }

    [Fact]
    public void QuietPeriod_RestartsWithEachActivationFromIdle()
    {
        _eoi.Interrupt(0);
        _eoi.RegionAccess();
        _clock.Advance(TimeSpan.FromMilliseconds(600));
        _eoi.Interrupt(1);
        _eoi.RegionAccess();
        _clock.Advance(TimeSpan.FromMilliseconds(600));
        _eoi.IsFastPath.ShouldBeFalse("the second interrupt restarted the quiet period");
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        _eoi.IsFastPath.ShouldBeTrue();
    }

    [Fact]
    public void FastPath_Returned_ThenANewInterrupt_LeavesItAgain()
    {
        _eoi.Interrupt(0);
        _eoi.RegionAccess();
        _clock.Advance(Quiet);
        _eoi.Interrupt(2);
        _eoi.IsFastPath.ShouldBeFalse();
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0", "fast", "inject 2", "slow"]);
    }

    [Fact]
    public void ZeroQuietPeriod_KeepsTheSlowPath()
    {
        var host = new RecordingHost();
        using var eoi = new PlatformEoiStateMachine(1, host, _clock, TimeSpan.Zero);
        eoi.Interrupt(0);
        eoi.RegionAccess();
        _clock.Advance(TimeSpan.FromHours(1));
        eoi.IsFastPath.ShouldBeFalse();
        host.Log.ShouldBe(["inject 0", "slow", "complete 0"]);
    }

    [Fact]
    public void Dispose_StopsTheTimer_AndRefusesInputs()
    {
        _eoi.Interrupt(0);
        _eoi.RegionAccess();
        _eoi.Dispose();
        _clock.Advance(Quiet);
        _host.Log.ShouldBe(["inject 0", "slow", "complete 0"]);
        Should.Throw<ObjectDisposedException>(() => _eoi.Interrupt(0));
        Should.Throw<ObjectDisposedException>(() => _eoi.RegionAccess());
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    public void IrqOutOfRange_IsRefused(int irq)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => _eoi.Interrupt(irq)).Message.ShouldContain("IRQs 0 to 3");
        Should.Throw<ArgumentOutOfRangeException>(() => _eoi.GetState(irq));
        _host.Log.ShouldBeEmpty();
    }

    [Fact]
    public void Construction_RefusesBadArguments()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new PlatformEoiStateMachine(0, _host, _clock, Quiet));
        Should.Throw<ArgumentOutOfRangeException>(() => new PlatformEoiStateMachine(1, _host, _clock, TimeSpan.FromSeconds(-1)));
        Should.Throw<ArgumentNullException>(() => new PlatformEoiStateMachine(1, null!, _clock, Quiet));
        Should.Throw<ArgumentNullException>(() => new PlatformEoiStateMachine(1, _host, null!, Quiet));
    }

    [Fact]
    public void Transitions_AreAllocationFree()
    {
        _eoi.Interrupt(0);
        _eoi.Interrupt(1);
        _eoi.RegionAccess();
        _eoi.RegionAccess();
        // The system clock: the fake one allocates when a timer is re-armed, the system timer does not.
        var quiet = new PlatformEoiStateMachine(2, NullHost.Instance, TimeProvider.System, TimeSpan.FromHours(1));
        quiet.Interrupt(0);
        quiet.RegionAccess();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            quiet.Interrupt(0);
            quiet.Interrupt(1);
            quiet.RegionAccess();
            quiet.RegionAccess();
        }
        (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
        quiet.Dispose();
    }

    private sealed class RecordingHost : IPlatformEoiHost
    {
        public List<string> Log { get; } = [];

        public void Inject(int irq) => Log.Add($"inject {irq}");

        public void Complete(int irq) => Log.Add($"complete {irq}");

        public void SetFastPath(bool enabled) => Log.Add(enabled ? "fast" : "slow");
    }

    private sealed class NullHost : IPlatformEoiHost
    {
        public static readonly NullHost Instance = new();

        public void Inject(int irq)
        {
        }

        public void Complete(int irq)
        {
        }

        public void SetFastPath(bool enabled)
        {
        }
    }
}
