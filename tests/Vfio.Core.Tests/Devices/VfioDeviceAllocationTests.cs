// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests.Devices;

/// <summary>performance.md G9: the register-access and SET_IRQS paths allocate nothing in the steady state.</summary>
[Collection(typeof(AllocationCollection))]
public sealed class VfioDeviceAllocationTests
{
    private const int Operations = 10_000;

    private static (VfioDevice Device, FakeDeviceKernel Kernel) Create()
    {
        var kernel = new FakeDeviceKernel();
        kernel.Regions[0] = new FakeRegion { Flags = 7, Size = 0x1000 };
        kernel.Regions[7] = new FakeRegion { Size = 0x100, Memory = new byte[0x100] };
        return (new VfioDevice(kernel, FakeDeviceKernel.OpenDeviceFd(), "dev", ownsHandle: true), kernel);
    }

    private static long Measure(Action body)
    {
        body();   // warm up: JIT, region-info cache, pools
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Operations; i++)
        {
            body();
        }
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void RegionAccessByPreadPwrite_AllocatesNothing()
    {
        (VfioDevice device, FakeDeviceKernel _) = Create();
        using (device)
        {
            var span = new byte[64];
            Measure(() =>
            {
                device.WriteRegion8(0, 1, 1);
                device.WriteRegion16(0, 2, 2);
                device.WriteRegion32(0, 4, 3);
                device.WriteRegion64(0, 8, 4);
                _ = device.ReadRegion8(0, 1) + device.ReadRegion16(0, 2) + device.ReadRegion32(0, 4);
                _ = device.ReadRegion64(0, 8);
                _ = device.ReadRegion32(7, 0);
                device.ReadRegion(0, 0x40, span);
                device.WriteRegion(0, 0x80, span);
            }).ShouldBe(0);
        }
    }

    [Fact]
    public void MappedAccess_AllocatesNothing()
    {
        (VfioDevice device, FakeDeviceKernel _) = Create();
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(0))
        {
            Measure(() =>
            {
                bar.Write32(0x10, 1);
                bar.Write64(0x18, 2);
                _ = bar.Read32(0x10) + bar.Read8(0) + bar.Read16(2);
                _ = bar.Read64(0x18);
            }).ShouldBe(0);
        }
    }

    [Fact]
    public void SetIrqs_UpToEightEventFds_AndDataNoneActions_AllocateNothing()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        var events = new InterruptEvent?[8];
        for (int i = 0; i < events.Length; i++)
        {
            events[i] = i == 3 ? null : new InterruptEvent();
        }
        try
        {
            using (device)
            using (var resample = new InterruptEvent())
            {
                Measure(() =>
                {
                    device.SetIrqEventFds(2, 0, events);
                    device.SetIrqEventFds(1, 0, events.AsSpan(0, 1));
                    device.TriggerIrq(1);
                    device.MaskIrq(0);
                    device.UnmaskIrq(0);
                    device.SetIrqUnmaskEventFd(0, resample);
                    device.DisableIrq(2);
                }).ShouldBe(0);
                kernel.SetIrqsCalls.ShouldBe(7 * (Operations + 1));
            }
        }
        finally
        {
            foreach (InterruptEvent? e in events)
            {
                e?.Dispose();
            }
        }
    }

    [Fact]
    public void SetIrqEventFds_DisposedEventHalfWay_ReleasesTheHandlesAlreadyHeld()
    {
        // The first event's fd is held (AddRef) while the list is built; when the second turns out disposed, the
        // hold must be dropped, or disposing the first event would never close its fd.
        (VfioDevice device, FakeDeviceKernel _) = Create();
        using (device)
        {
            var first = new InterruptEvent();
            int fd = (int)first.Handle.DangerousGetHandle();
            var gone = new InterruptEvent();
            gone.Dispose();
            Should.Throw<ObjectDisposedException>(() => device.SetIrqEventFds(1, 0, [first, gone]));
            first.Dispose();
            LinuxKernel.Instance.ReadLink($"/proc/self/fd/{fd}", out string target).ShouldBeLessThan(0, $"fd {fd} still open: {target}");
        }
    }
}
