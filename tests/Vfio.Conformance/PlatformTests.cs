// SPDX-License-Identifier: MIT
using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Vfio.Core;
using Vfio.Devices.Platform;

namespace Vfio.Conformance;

/// <summary>The virtio-mmio rng through Devices.Platform (<see cref="VfioPlatformDevice"/>): its region and level IRQ,
/// the typed errors of bad input, unmask eventfds, and the end-of-interrupt emulation.</summary>
public sealed class PlatformTests
{
    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_IsAPlatformDevice_WithOneUnmappableMmioRegion_AndOneLevelIrq(Mode mode)
    {
        using var rng = new Rng(mode);
        VfioPlatformDevice platform = rng.Platform;
        platform.Regions.Count.ShouldBe(1);
        platform.Irqs.Count.ShouldBe(1);
        VfioPlatformRegion region = platform.GetRegion(0);
        region.Kind.ShouldBe(VfioPlatformRegionKind.Mmio);
        region.Size.ShouldBe(0x200UL);
        region.CanMap.ShouldBeFalse();
        region.Read32(VirtioMmioDriver.MagicValue).ShouldBe(0x74726976u);
        Should.Throw<InvalidOperationException>(region.Map).Message.ShouldContain("region 0 cannot be mapped");
        region.IsMapped.ShouldBeFalse();
        platform.GetIrq(0).IsLevelTriggered.ShouldBeTrue();
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_BadIndexesAndOffsets_AreTypedErrorsNamingTheDevice(Mode mode)
    {
        using var rng = new Rng(mode);
        (VfioDevice device, VfioPlatformDevice platform) = (rng.Device, rng.Platform);
        VfioPlatformRegion region = platform.GetRegion(0);
        region.Read32(VirtioMmioDriver.MmioVersion).ShouldBe(2u);
        Should.Throw<ArgumentOutOfRangeException>(() => region.Read32(0x200)).Message.ShouldContain($"{device.Name} region 0");
        Should.Throw<ArgumentOutOfRangeException>(() => region.Write32(0x1fe, 0)).Message.ShouldContain("0x200 bytes");
        Should.Throw<ArgumentOutOfRangeException>(() => platform.GetIrq(1)).Message.ShouldContain($"{device.Name} has 1 IRQ(s)");
        Should.Throw<ArgumentOutOfRangeException>(() => platform.GetRegion(1)).Message.ShouldContain("region 1 does not exist");
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_LevelIrq_IsUnmaskedThroughItsUnmaskEventFd(Mode mode)
    {
        using var rng = new Rng(mode);
        (VfioDevice device, VfioPlatformDevice platform) = (rng.Device, rng.Platform);   // see DeviceTests: a region is touched before close
        VfioPlatformIrq irq = platform.GetIrq(0);
        irq.Enable();
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.EventFd, "vfio-platform takes an unmask eventfd for a level IRQ");
        device.TriggerIrq(0);
        irq.TryWait(Rig.Timeout, out ulong first).ShouldBeTrue();
        first.ShouldBe(1UL);
        device.TriggerIrq(0);
        irq.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse("automasked until unmasked");
        irq.Unmask();
        TriggerUntilSignalled(device, irq).ShouldBeTrue("unmasked by the eventfd");
        irq.Unmask();
        irq.Disable();
        irq.IsEnabled.ShouldBeFalse();
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_LevelIrq_TakesACallersResampleFd_AndReleasesItOnDisable(Mode mode)
    {
        using var rng = new Rng(mode);
        (VfioDevice device, VfioPlatformDevice platform) = (rng.Device, rng.Platform);
        using var resample = new InterruptEvent();
        VfioPlatformIrq irq = platform.GetIrq(0);
        irq.Enable(resample);
        device.TriggerIrq(0);
        irq.TryWait(Rig.Timeout, out _).ShouldBeTrue();
        resample.Signal();   // what KVM's resampler would do at the guest's EOI
        TriggerUntilSignalled(device, irq).ShouldBeTrue("the caller's resample fd unmasked the line");
        irq.Unmask();
        irq.Disable();
        // Nothing stays registered: a second unmask eventfd would get EBUSY otherwise.
        irq.Enable();
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.EventFd);
        irq.Disable();
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public async Task Rng_IrqWait_IsAsyncAndCancellable(Mode mode)
    {
        using var rng = new Rng(mode);
        (VfioDevice device, VfioPlatformDevice platform) = (rng.Device, rng.Platform);
        VfioPlatformIrq irq = platform.GetIrq(0);
        irq.Enable();
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await Should.ThrowAsync<OperationCanceledException>(async () => await irq.WaitAsync(cts.Token));
        }
        ValueTask<ulong> wait = irq.WaitAsync(TestContext.Current.CancellationToken);
        device.TriggerIrq(0);
        (await wait.AsTask().WaitAsync(Rig.Timeout, TestContext.Current.CancellationToken)).ShouldBe(1UL);
        irq.Unmask();
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public async Task Rng_EoiEmulation_EndsTheIrqAtTheNextRegionAccess_AndUnmasksIt(Mode mode)
    {
        using var rng = new Rng(mode);
        (VfioDevice device, VfioPlatformDevice platform) = (rng.Device, rng.Platform);
        VfioPlatformRegion region = platform.GetRegion(0);
        platform.GetIrq(0).Enable();
        var host = new RecordingHost();
        var clock = new FakeTimeProvider();   // the quiet period passes when the case says so, however slow the guest
        platform.StartEoiEmulation(host, TimeSpan.FromSeconds(1), clock);

        device.TriggerIrq(0);
        (await host.Next()).ShouldBe("inject 0");
        (await host.Next()).ShouldBe("slow");
        region.Read32(VirtioMmioDriver.InterruptStatus);   // the end of interrupt: IRQ 0 is unmasked
        (await host.Next()).ShouldBe("complete 0");
        (await TriggerUntilNext(device, host)).ShouldBe("inject 0", "the EOI unmasked the automasked line");
        region.Read32(VirtioMmioDriver.InterruptStatus);
        (await host.Next()).ShouldBe("complete 0");
        platform.EoiStateMachine!.IsFastPath.ShouldBeFalse();
        clock.Advance(TimeSpan.FromSeconds(1));
        (await host.Next()).ShouldBe("fast", "the quiet period passed with no IRQ active");
        platform.StopEoiEmulation();
    }

    /// <summary>Loopback-triggers IRQ 0 until its eventfd is signalled: the kernel runs an unmask eventfd's handler
    /// as the eventfd is written, the simulator's watcher thread a moment later, so a trigger can still find the line
    /// masked there.</summary>
    private static bool TriggerUntilSignalled(VfioDevice device, VfioPlatformIrq irq)
    {
        DateTime end = DateTime.UtcNow + Rig.Timeout;
        do
        {
            device.TriggerIrq(0);
            if (irq.TryWait(TimeSpan.FromMilliseconds(20), out ulong count))
            {
                return count == 1;
            }
        }
        while (DateTime.UtcNow < end);
        return false;
    }

    /// <summary>As <see cref="TriggerUntilSignalled"/>, for the emulation's next host call.</summary>
    private static async Task<string> TriggerUntilNext(VfioDevice device, RecordingHost host)
    {
        DateTime end = DateTime.UtcNow + Rig.Timeout;
        do
        {
            device.TriggerIrq(0);
            if (await host.Next(TimeSpan.FromMilliseconds(20)) is { } next)
            {
                return next;
            }
        }
        while (DateTime.UtcNow < end);
        return "nothing";
    }

    /// <summary>The rng attached in a rig, as a <see cref="VfioPlatformDevice"/> whose region was touched (see
    /// DeviceTests: 6.12 iounmap()s every region on close, and an untouched one warns).</summary>
    private sealed class Rng : IDisposable
    {
        private readonly Rig _rig;

        internal Rng(Mode mode)
        {
            _rig = Rig.Create(mode);
            Device = _rig.Attach(Target.Rng).Device;
            Platform = new VfioPlatformDevice(Device);
            Platform.GetRegion(0).Read32(VirtioMmioDriver.MagicValue);
        }

        internal VfioDevice Device { get; }

        internal VfioPlatformDevice Platform { get; }

        public void Dispose()
        {
            Platform.Dispose();
            _rig.Dispose();
        }
    }

    /// <summary>Records the emulation's host calls in order.</summary>
    internal sealed class RecordingHost : IPlatformEoiHost
    {
        private readonly Channel<string> _log = Channel.CreateUnbounded<string>();

        public async Task<string> Next() => await Next(Rig.Timeout) ?? throw new TimeoutException("The emulation called its host no more.");

        public async Task<string?> Next(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                return await _log.Reader.ReadAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }

        public void Inject(int irq) => _log.Writer.TryWrite($"inject {irq}");

        public void Complete(int irq) => _log.Writer.TryWrite($"complete {irq}");

        public void SetFastPath(bool enabled) => _log.Writer.TryWrite(enabled ? "fast" : "slow");
    }
}
