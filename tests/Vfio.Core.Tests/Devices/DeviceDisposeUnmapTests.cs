// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests.Devices;

/// <summary>A device's disposal and the accesses still in flight through its region mappings: a mapping holds the device
/// file open, so <see cref="VfioDevice.Dispose"/> waits (bounded) until the memory is really unmapped.</summary>
public sealed class DeviceDisposeUnmapTests
{
    private static (VfioDevice Device, FakeDeviceKernel Kernel) Create()
    {
        var kernel = new FakeDeviceKernel();
        kernel.Regions[0] = new FakeRegion { Flags = 7, Size = 0x10000, Memory = new byte[0x10000] };
        return (new VfioDevice(kernel, FakeDeviceKernel.OpenDeviceFd(), "0000:00:02.0", ownsHandle: true), kernel);
    }

    [Fact]
    public void Dispose_WaitsForAnAccessInFlightOnAnotherThread_SoTheMemoryIsUnmappedWhenItReturns()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        VfioRegionMapping bar = device.MapRegion(0);
        FakeMapping area = kernel.Mappings[0];
        // An accessor between its check and its load holds one reference, as this thread does here; it lets go only
        // once the disposal has started (the region mapping refuses accesses), so the disposal must wait for it.
        bool added = false;
        area.DangerousAddRef(ref added);
        var access = new Thread(() =>
        {
            SpinWait.SpinUntil(() => Disposed(bar), TimeSpan.FromSeconds(30)).ShouldBeTrue();
            Thread.Sleep(20);
            area.DangerousRelease();
        });
        access.Start();

        device.Dispose();

        area.Released.ShouldBeTrue("the disposal returned before the access in flight let go of the mapping");
        access.Join();
    }

    private static bool Disposed(VfioRegionMapping bar)
    {
        try
        {
            _ = bar.Read32(0);
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    [Fact]
    public void Dispose_WithAWindowLeftOpen_ReturnsAfterItsBoundedWait_AndTheWindowKeepsTheMemoryUntilItCloses()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        VfioRegionMapping bar = device.MapRegion(0);
        FakeMapping area = kernel.Mappings[0];
        MmioWindow window = bar.Acquire(0, 0x100);
        try
        {
            device.Dispose();   // bounded: returns although the window still holds the mapping
            area.Released.ShouldBeFalse();
            window.Write32(0, 7);
            window.Read32(0).ShouldBe(7u);
            Should.Throw<ObjectDisposedException>(() => bar.Read32(0));
        }
        finally
        {
            window.Dispose();
        }
        area.Released.ShouldBeTrue();
    }

    [Fact]
    public void Dispose_WithNothingInFlight_UnmapsAtOnce()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        _ = device.MapRegion(0);
        _ = device.MapRegion(0);
        device.Dispose();
        kernel.Mappings.Count.ShouldBe(2);
        kernel.Mappings.ShouldAllBe(m => m.Released);
    }
}
