// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Devices.Platform.Tests;

/// <summary><see cref="VfioPlatformDevice"/> over the simulator's <see cref="PlatformTestDevice"/>: regions, IRQs,
/// the bad inputs, and the end-of-interrupt emulation.</summary>
public sealed class VfioPlatformDeviceTests
{
    [Fact]
    public void Regions_AreMmioOrPio_WithTheKernelsMappability()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformDevice p = sim.Platform;
        p.Regions.Count.ShouldBe(3);
        p.Irqs.Count.ShouldBe(3);
        p.GetRegion(0).Kind.ShouldBe(VfioPlatformRegionKind.Mmio);
        p.GetRegion(0).CanMap.ShouldBeTrue();
        p.GetRegion(1).Kind.ShouldBe(VfioPlatformRegionKind.Mmio);
        p.GetRegion(1).CanMap.ShouldBeFalse();
        p.GetRegion(2).Kind.ShouldBe(VfioPlatformRegionKind.Pio);
        p.GetRegion(2).Size.ShouldBe(8UL);
    }

    [Fact]
    public void MappedRegion_ReadsAndWritesTheDevice()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformRegion r = sim.Platform.GetRegion(0);
        r.Read32(PlatformTestDevice.IdRegister).ShouldBe(PlatformTestDevice.Id);
        r.Map();
        r.IsMapped.ShouldBeTrue();
        r.Read32(PlatformTestDevice.IdRegister).ShouldBe(PlatformTestDevice.Id);
        r.Write32(PlatformTestDevice.ScratchRegister, 0xfeedf00d);
        sim.Device.ReadRegion32(0, PlatformTestDevice.ScratchRegister).ShouldBe(0xfeedf00du, "the mapping reached the device");
        Should.Throw<InvalidOperationException>(r.Map).Message.ShouldContain("mapped already");
    }

    [Fact]
    public void UnmappableRegion_UsesPreadPwrite_OfEveryWidth()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformRegion r = sim.Platform.GetRegion(1);
        r.Write8(0x01, 0xab);
        r.Write16(0x02, 0x1234);
        r.Write32(0x04, 0xcafebabe);
        r.Read8(0x01).ShouldBe((byte)0xab);
        r.Read16(0x02).ShouldBe((ushort)0x1234);
        r.Read32(0x04).ShouldBe(0xcafebabeu);
        Should.Throw<InvalidOperationException>(r.Map).Message.ShouldContain($"{SimulatedPlatform.Name} region 1 cannot be mapped");
        r.IsMapped.ShouldBeFalse();
    }

    [Fact]
    public void PioRegion_RefusesMapAndAccess_NamingTheRegion()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformRegion pio = sim.Platform.GetRegion(2);
        Should.Throw<InvalidOperationException>(pio.Map).Message.ShouldContain($"{SimulatedPlatform.Name} region 2 is an I/O-port (PIO) region");
        Should.Throw<InvalidOperationException>(() => pio.Read32(0)).Message.ShouldContain("region 2");
        Should.Throw<InvalidOperationException>(() => pio.Write8(0, 1)).Message.ShouldContain("region 2");
        pio.IsMapped.ShouldBeFalse();
        sim.Device.GetRegion(2).Flags.ShouldBe(VfioRegionFlags.None, "the kernel reports no access to a PIO resource");
    }

    [Theory]
    [InlineData(0x1000UL, 1)]
    [InlineData(0xffdUL, 4)]
    [InlineData(ulong.MaxValue, 4)]
    public void RegionAccess_OutOfRange_IsATypedErrorNamingTheRegion(ulong offset, int width)
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformRegion r = sim.Platform.GetRegion(0);
        ArgumentOutOfRangeException e = width == 1
            ? Should.Throw<ArgumentOutOfRangeException>(() => r.Read8(offset))
            : Should.Throw<ArgumentOutOfRangeException>(() => r.Write32(offset, 0));
        e.Message.ShouldContain($"{SimulatedPlatform.Name} region 0");
        e.Message.ShouldContain("0x1000 bytes");
    }

    [Fact]
    public void IndexOutOfRange_IsATypedErrorNamingTheDevice()
    {
        using var sim = new SimulatedPlatform();
        Should.Throw<ArgumentOutOfRangeException>(() => sim.Platform.GetIrq(3)).Message.ShouldContain($"{SimulatedPlatform.Name} has 3 IRQ(s); IRQ 3 does not exist");
        Should.Throw<ArgumentOutOfRangeException>(() => sim.Platform.GetIrq(-1));
        Should.Throw<ArgumentOutOfRangeException>(() => sim.Platform.GetRegion(3)).Message.ShouldContain("region 3 does not exist");
    }

    [Fact]
    public void EdgeIrq_GivenAResampleFd_IsRefused_AndNothingIsWired()
    {
        using var sim = new SimulatedPlatform();
        using var resample = new InterruptEvent();
        VfioPlatformIrq edge = sim.Platform.GetIrq(2);
        edge.IsLevelTriggered.ShouldBeFalse();
        Should.Throw<ArgumentException>(() => edge.Enable(resample)).Message.ShouldContain($"{SimulatedPlatform.Name} IRQ 2 is edge-triggered");
        edge.IsEnabled.ShouldBeFalse();
        edge.Trigger.ShouldBeNull();
        edge.Enable();   // nothing was left behind: it enables normally
        sim.Raise(2);
        edge.TryWait(SimulatedPlatform.Timeout, out _).ShouldBeTrue();
    }

    [Fact]
    public void LevelIrq_IsAutomasked_AndUnmaskedThroughItsEventFd()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformIrq irq = sim.Platform.GetIrq(0);
        irq.IsLevelTriggered.ShouldBeTrue();
        irq.Enable();
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.EventFd);
        sim.Raise(0);
        irq.TryWait(SimulatedPlatform.Timeout, out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL);
        irq.TryWait(TimeSpan.FromMilliseconds(50), out _).ShouldBeFalse("automasked while still asserted");
        irq.Unmask();
        irq.TryWait(SimulatedPlatform.Timeout, out _).ShouldBeTrue("still asserted: signalled again once unmasked");
        sim.Lower(0);
        irq.Unmask();
        irq.TryWait(TimeSpan.FromMilliseconds(50), out _).ShouldBeFalse("lowered");
        irq.Disable();
        irq.IsEnabled.ShouldBeFalse();
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.None);
    }

    [Fact]
    public void LevelIrq_TakesTheCallersResampleFd()
    {
        using var sim = new SimulatedPlatform();
        using var resample = new InterruptEvent();
        VfioPlatformIrq irq = sim.Platform.GetIrq(1);
        irq.Enable(resample);
        sim.Raise(1);
        irq.TryWait(SimulatedPlatform.Timeout, out _).ShouldBeTrue();
        sim.Lower(1);
        sim.Raise(1);
        irq.TryWait(TimeSpan.FromMilliseconds(50), out _).ShouldBeFalse("masked until the resample fd is signalled");
        resample.Signal();
        irq.TryWait(SimulatedPlatform.Timeout, out _).ShouldBeTrue();
        irq.Disable();
        resample.Signal();   // the caller's event stays usable
    }

    [Fact]
    public void LevelIrq_WhoseUnmaskEventFdTheKernelRefuses_FallsBackToExplicitUnmask()
    {
        using var sim = new SimulatedPlatform();
        using var foreign = new InterruptEvent();
        sim.Device.SetIrqUnmaskEventFd(0, foreign);   // the kernel now answers EBUSY to a second one
        VfioPlatformIrq irq = sim.Platform.GetIrq(0);
        irq.Enable();
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.Ioctl);
        sim.Raise(0);
        irq.TryWait(SimulatedPlatform.Timeout, out _).ShouldBeTrue();
        irq.TryWait(TimeSpan.FromMilliseconds(50), out _).ShouldBeFalse("automasked");
        irq.Unmask();
        irq.TryWait(TimeSpan.Zero, out _).ShouldBeTrue("the explicit unmask re-signals the still-asserted line at once");
        irq.Disable();
        sim.Device.SetIrqUnmaskEventFd(0, null);
    }

    [Fact]
    public void LevelIrq_WhoseCallersResampleFdTheKernelRefuses_ThrowsAndLeavesNothingWired()
    {
        using var sim = new SimulatedPlatform();
        using var foreign = new InterruptEvent();
        using var resample = new InterruptEvent();
        sim.Device.SetIrqUnmaskEventFd(0, foreign);
        VfioPlatformIrq irq = sim.Platform.GetIrq(0);
        Should.Throw<VfioException>(() => irq.Enable(resample)).Errno.ShouldBe(Errno.EBUSY);
        irq.IsEnabled.ShouldBeFalse();
        sim.Device.SetIrqUnmaskEventFd(0, null);
        irq.Enable(resample);
        irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.EventFd);
    }

    [Fact]
    public void EnableTwice_IsRefused_AndDisableIsIdempotent()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformIrq irq = sim.Platform.GetIrq(0);
        irq.Enable();
        Should.Throw<InvalidOperationException>(() => irq.Enable()).Message.ShouldContain("enabled already");
        irq.Disable();
        irq.Disable();
        Should.Throw<InvalidOperationException>(() => irq.TryWait(TimeSpan.Zero, out _)).Message.ShouldContain("IRQ 0 is not enabled");
    }

    [Fact]
    public async Task EdgeIrq_SignalsEachPulse_AndItsWaitIsCancellable()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformIrq edge = sim.Platform.GetIrq(2);
        edge.Enable();
        edge.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.None);
        sim.Raise(2);
        (await edge.WaitAsync(TestContext.Current.CancellationToken)).ShouldBe(1UL);
        sim.Raise(2);
        (await edge.WaitAsync(TestContext.Current.CancellationToken)).ShouldBe(1UL, "an edge IRQ is not masked");
        edge.Unmask();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Should.ThrowAsync<OperationCanceledException>(async () => await edge.WaitAsync(cts.Token));
    }

    [Fact]
    public void NotAPlatformDevice_IsRefused()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions()));
        using var backend = new Vfio.Backends.Legacy.LegacyBackend(kernel, new VfioOptions());
        using var space = new DmaSpace("pci");
        VfioDevice pci = backend.AttachDevice(VfioDeviceSource.Pci(SimulatedMachines.Edu), space).Device;
        Should.Throw<ArgumentException>(() => new VfioPlatformDevice(pci)).Message.ShouldContain("is not a platform device");
    }

    [Fact]
    public async Task EoiEmulation_OneActiveAtATime_EoiOnRegionAccess_UnmasksLevelIrqs_AndSwitchesPaths()
    {
        using var sim = new SimulatedPlatform();
        var clock = new FakeTimeProvider();
        var host = new QueueHost();
        VfioPlatformDevice p = sim.Platform;
        p.GetIrq(0).Enable();
        p.GetIrq(2).Enable();
        VfioPlatformRegion r = p.GetRegion(0);
        r.Map();
        p.StartEoiEmulation(host, TimeSpan.FromSeconds(1), clock);
        Should.Throw<InvalidOperationException>(() => p.StartEoiEmulation(host)).Message.ShouldContain("runs already");

        sim.Raise(0);
        (await host.Next()).ShouldBe("inject 0");
        (await host.Next()).ShouldBe("slow");
        sim.Raise(2);   // edge, while 0 is active: pending
        await WaitUntil(() => p.EoiStateMachine!.GetState(2) == PlatformIrqState.Pending);
        p.EoiStateMachine!.ActiveIrq.ShouldBe(0);

        sim.Lower(0);   // the driver clears the cause (not through Devices.Platform: no EOI yet)
        r.Read32(PlatformTestDevice.LevelRegister).ShouldBe(0u);   // this access is the EOI of IRQ 0
        (await host.Next()).ShouldBe("complete 0");
        (await host.Next()).ShouldBe("inject 2");
        r.Read32(PlatformTestDevice.IdRegister).ShouldBe(PlatformTestDevice.Id);
        (await host.Next()).ShouldBe("complete 2");

        sim.Raise(0);   // IRQ 0 was unmasked at its EOI, so it fires again
        (await host.Next()).ShouldBe("inject 0");
        sim.Lower(0);
        r.Read32(PlatformTestDevice.IdRegister);
        (await host.Next()).ShouldBe("complete 0");
        p.EoiStateMachine.IsFastPath.ShouldBeFalse();
        clock.Advance(TimeSpan.FromSeconds(1));
        (await host.Next()).ShouldBe("fast");
        r.Write32(PlatformTestDevice.ScratchRegister, 7);   // through the mapping again
        r.Read32(PlatformTestDevice.ScratchRegister).ShouldBe(7u);

        p.StopEoiEmulation();
        p.EoiStateMachine.ShouldBeNull();
        host.Count.ShouldBe(0);
    }

    [Fact]
    public async Task EoiEmulation_EndsTheInterruptAfterTheAccess_SoAWriteThatLowersTheLineKeepsItQuiet()
    {
        using var sim = new SimulatedPlatform();
        var host = new QueueHost();
        VfioPlatformDevice p = sim.Platform;
        // The explicit unmask is synchronous (the simulator runs an unmask eventfd a moment later), so an EOI before
        // the write would certainly find the line asserted.
        using var foreign = new InterruptEvent();
        sim.Device.SetIrqUnmaskEventFd(0, foreign);
        p.GetIrq(0).Enable();
        p.GetIrq(0).UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.Ioctl);
        p.StartEoiEmulation(host, TimeSpan.FromSeconds(1), new FakeTimeProvider());
        sim.Raise(0);
        (await host.Next()).ShouldBe("inject 0");
        (await host.Next()).ShouldBe("slow");
        // The driver's write lowers the line; the EOI (and the unmask) follow the write, so nothing fires again.
        p.GetRegion(0).Write32(PlatformTestDevice.DeassertRegister, 1);
        (await host.Next()).ShouldBe("complete 0");
        await Task.Delay(100, TestContext.Current.CancellationToken);
        host.Count.ShouldBe(0, "an EOI before the write would have unmasked a still-asserted line");
        p.EoiStateMachine!.ActiveIrq.ShouldBe(-1);
        p.StopEoiEmulation();
        sim.Device.SetIrqUnmaskEventFd(0, null);
    }

    [Fact]
    public void RegionAccess_ThroughTheMapping_AndTheEoiEmulation_IsAllocationFree()
    {
        using var sim = new SimulatedPlatform();
        VfioPlatformDevice p = sim.Platform;
        VfioPlatformRegion r = p.GetRegion(0);
        r.Map();
        p.GetIrq(0).Enable();
        p.StartEoiEmulation(new QueueHost(), TimeSpan.FromHours(1), TimeProvider.System);
        r.Write32(PlatformTestDevice.ScratchRegister, 1);
        r.Read32(PlatformTestDevice.ScratchRegister);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (uint i = 0; i < 1000; i++)
        {
            r.Write32(PlatformTestDevice.ScratchRegister, i);
            r.Read32(PlatformTestDevice.ScratchRegister);
        }
        (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
        r.Read32(PlatformTestDevice.ScratchRegister).ShouldBe(999u);
    }

    [Fact]
    public void EoiEmulation_NeedsAnEnabledIrq()
    {
        using var sim = new SimulatedPlatform();
        Should.Throw<InvalidOperationException>(() => sim.Platform.StartEoiEmulation(new QueueHost())).Message.ShouldContain("has no enabled IRQ");
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        DateTime end = DateTime.UtcNow + SimulatedPlatform.Timeout;
        while (!condition())
        {
            DateTime.UtcNow.ShouldBeLessThan(end, "the condition did not become true");
            await Task.Delay(5);
        }
    }

    private sealed class QueueHost : IPlatformEoiHost
    {
        private readonly System.Threading.Channels.Channel<string> _log = System.Threading.Channels.Channel.CreateUnbounded<string>();

        public int Count => _log.Reader.Count;

        public async Task<string> Next()
        {
            using var cts = new CancellationTokenSource(SimulatedPlatform.Timeout);
            return await _log.Reader.ReadAsync(cts.Token);
        }

        public void Inject(int irq) => _log.Writer.TryWrite($"inject {irq}");

        public void Complete(int irq) => _log.Writer.TryWrite($"complete {irq}");

        public void SetFastPath(bool enabled) => _log.Writer.TryWrite(enabled ? "fast" : "slow");
    }
}
