// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests.Devices;

/// <summary><see cref="MmioWindow"/> over plain (direct) mappings: accesses, bounds, lifetime.</summary>
public sealed class MmioWindowTests
{
    private static (VfioDevice Device, FakeDeviceKernel Kernel) Create(Action<FakeDeviceKernel>? setup = null)
    {
        var kernel = new FakeDeviceKernel();
        kernel.Regions[0] = new FakeRegion { Flags = 7, Size = 0x10000, Memory = new byte[0x10000] };
        setup?.Invoke(kernel);
        return (new VfioDevice(kernel, FakeDeviceKernel.OpenDeviceFd(), "0000:00:02.0", ownsHandle: true), kernel);
    }

    [Fact]
    public void Acquire_AccessesEveryWidth_AtTheWindowOffset_AsTheMappingSeesThem()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(0))
        {
            using MmioWindow w = bar.Acquire(0x1000, 0x100);
            kernel.Mappings[0].RoutesAccesses.ShouldBeFalse();
            w.Length.ShouldBe(0x100UL);
            w.MappingOffset.ShouldBe(0x1000UL);
            w.Write32(0x04, 0xCAFEF00D);
            bar.Read32(0x1004).ShouldBe(0xCAFEF00Du);
            bar.Write32(0x10FC, 0x12345678);
            w.Read32(0xFC).ShouldBe(0x12345678u);
            w.Write8(0x01, 0xA5);
            bar.Read8(0x1001).ShouldBe((byte)0xA5);
            w.Read8(0xFF).ShouldBe((byte)0x12);
            w.Write16(0x02, 0xBEEF);
            w.Read16(0x02).ShouldBe((ushort)0xBEEF);
            bar.Read16(0x1002).ShouldBe((ushort)0xBEEF);
            w.Write64(0xF0, 0x1122334455667788);
            bar.Read64(0x10F0).ShouldBe(0x1122334455667788UL);
            w.Read64(0xF0).ShouldBe(0x1122334455667788UL);
            w.Read32(0xF0).ShouldBe(0x55667788u);   // little-endian
        }
    }

    [Fact]
    public void Access_OutsideTheWindow_ThrowsOutOfRange_Misaligned_ThrowsArgument()
    {
        (VfioDevice device, _) = Create();
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(0))
        {
            ArgumentOutOfRangeException e = Should.Throw<ArgumentOutOfRangeException>(() =>
            {
                using MmioWindow w = bar.Acquire(0x1000, 0x100);
                _ = w.Read32(0x100);
            });
            e.Message.ShouldContain("outside the 0x100-byte window (mapping offset 0x1000)");
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); w.Write8(0x100, 1); });
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); _ = w.Read16(0x100); });
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); w.Write64(0x100, 1); });
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); _ = w.Read64(ulong.MaxValue - 7); });
            // A window whose length is not a multiple of the width: the last whole access fits, the next does not.
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 6); _ = w.Read32(4); });
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 7); _ = w.Read64(0); });
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar.Acquire(0, 3); w.Write16(2, 1); });
            using (MmioWindow small = bar.Acquire(0, 6))
            {
                small.Write32(0, 7);
                small.Read16(4).ShouldBe((ushort)0);
                small.Read8(5).ShouldBe((byte)0);
                // The last bytes past the window's whole 4-byte units are served by the slow path, in both directions.
                small.Write16(4, 0x1234);
                small.Read16(4).ShouldBe((ushort)0x1234);
                small.Write8(5, 0x56);
                small.Read8(5).ShouldBe((byte)0x56);
                small.Read32(0).ShouldBe(7u);
            }

            Should.Throw<ArgumentException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); _ = w.Read32(2); }).Message.ShouldContain("not 4-byte aligned");
            Should.Throw<ArgumentException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); w.Write16(1, 1); }).Message.ShouldContain("not 2-byte aligned");
            Should.Throw<ArgumentException>(() => { using MmioWindow w = bar.Acquire(0, 0x100); w.Write64(4, 1); }).Message.ShouldContain("not 8-byte aligned");
        }
    }

    [Fact]
    public void Acquire_BadWindow_ThrowsBeforeTakingAReference()
    {
        byte[] caps = new CapBuilder(32).Sparse((0, 0x1000), (0x2000, 0x1000)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            VfioRegionMapping bar = device.MapRegion(0);
            Should.Throw<ArgumentOutOfRangeException>(() => bar.Acquire(0, 0));
            Should.Throw<ArgumentOutOfRangeException>(() => bar.Acquire(0xFF8, 0x10)).Message.ShouldContain("0x10-byte window at 0xFF8");
            Should.Throw<ArgumentOutOfRangeException>(() => bar.Acquire(0x1000, 8)).Message.ShouldContain("not inside a mapped area (mapped: 0x0-0xFFF, 0x2000-0x2FFF)");
            Should.Throw<ArgumentException>(() => bar.Acquire(0x2004, 8)).Message.ShouldContain("8-byte aligned");
            Should.Throw<ArgumentOutOfRangeException>(() => kernel.Mappings[0].Acquire(0x1000, 1));
            using (MmioWindow second = bar.Acquire(0x2008, 0x10))
            {
                second.MappingOffset.ShouldBe(8UL);
                second.Write32(0, 99);
            }
            bar.Read32(0x2008).ShouldBe(99u);
            bar.Dispose();
            // No window was left open: every area was released at dispose.
            kernel.Mappings.ShouldAllBe(m => m.Released);
        }
    }

    [Fact]
    public void Acquire_AfterDispose_ThrowsObjectDisposed()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            VfioRegionMapping bar = device.MapRegion(0);
            bar.Dispose();
            Should.Throw<ObjectDisposedException>(() => bar.Acquire(0, 4));
            Should.Throw<ObjectDisposedException>(() => kernel.Mappings[0].Acquire(0, 4));
            Should.Throw<ObjectDisposedException>(() => kernel.Mappings[0].Acquire());
        }
    }

    [Fact]
    public void OpenWindow_KeepsTheMappingMapped_UntilItCloses()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            VfioRegionMapping bar = device.MapRegion(0);
            FakeMapping area = kernel.Mappings[0];
            MmioWindow w = bar.Acquire(0, 0x10000);
            try
            {
                bar.Dispose();
                area.Released.ShouldBeFalse();   // the window still holds it
                w.Write32(0xFFFC, 5);
                w.Read32(0xFFFC).ShouldBe(5u);
                Should.Throw<ObjectDisposedException>(() => bar.Read32(0));
            }
            finally
            {
                w.Dispose();
            }
            area.Released.ShouldBeTrue();
            area.IsClosed.ShouldBeTrue();
            w.Length.ShouldBe(0UL);
            w.Dispose();   // idempotent: the reference is released once
        }
    }

    [Fact]
    public void ClosedOrDefaultWindow_Access_ThrowsObjectDisposed()
    {
        (VfioDevice device, _) = Create();
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(0))
        {
            Should.Throw<ObjectDisposedException>(() =>
            {
                MmioWindow w = bar.Acquire(0, 0x100);
                w.Dispose();
                _ = w.Read32(0);
            }).Message.ShouldContain("not open");
            Should.Throw<ObjectDisposedException>(() => default(MmioWindow).Write32(0, 1));
            default(MmioWindow).ToString().ShouldContain("closed");
        }
    }

    [Fact]
    public void Window_OnTheWholeMapping_CoversItsLength()
    {
        var mapping = new FakeMapping(0x2000, 0);
        using (mapping)
        {
            using MmioWindow w = mapping.Acquire();
            w.Length.ShouldBe(0x2000UL);
            w.Write64(0x1FF8, ulong.MaxValue);
            mapping.Read64(0x1FF8).ShouldBe(ulong.MaxValue);
            w.ToString().ShouldContain("0x2000 bytes at 0x0");
        }
    }
}
