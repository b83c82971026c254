// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests.Devices;

public sealed class VfioDeviceTests
{
    private const string Name = "0000:00:02.0";

    private static (VfioDevice Device, FakeDeviceKernel Kernel) Create(Action<FakeDeviceKernel>? setup = null)
    {
        var kernel = new FakeDeviceKernel();
        kernel.Regions[0] = new FakeRegion { Flags = 7, Size = 0x10000, Memory = new byte[0x10000] };
        kernel.Regions[7] = new FakeRegion { Size = 0x100, Memory = new byte[0x100] };
        setup?.Invoke(kernel);
        return (new VfioDevice(kernel, FakeDeviceKernel.OpenDeviceFd(), Name, ownsHandle: true), kernel);
    }

    // ---- device info ----

    [Fact]
    public void Constructor_ReadsDeviceInfo_WithOneCallWhenThereAreNoCaps()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.DeviceFlags = VfioUapi.VFIO_DEVICE_FLAGS_PCI | VfioUapi.VFIO_DEVICE_FLAGS_RESET);
        using (device)
        {
            device.Name.ShouldBe(Name);
            device.Info.Flags.ShouldBe(VfioDeviceFlags.Pci | VfioDeviceFlags.Reset);
            device.Info.IsPci.ShouldBeTrue();
            device.Info.IsPlatform.ShouldBeFalse();
            device.Info.SupportsReset.ShouldBeTrue();
            device.Info.RegionCount.ShouldBe(9);
            device.Info.IrqCount.ShouldBe(5);
            device.Info.Capabilities.ShouldBeEmpty();
            device.Info.PciAtomicCompleter.ShouldBeNull();
            kernel.InfoArgsz.ShouldBe([24u]);
        }
    }

    [Fact]
    public void Constructor_DeviceInfoCaps_RetriesWithTheLargerArgszAndParsesAtomicCompleter()
    {
        var payload = new byte[8];
        BitConverter.TryWriteBytes(payload, VfioUapi.VFIO_PCI_ATOMIC_COMP32 | VfioUapi.VFIO_PCI_ATOMIC_COMP64);
        byte[] caps = new CapBuilder(24).Add(VfioUapi.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, 1, payload).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.DeviceCaps = caps);
        using (device)
        {
            kernel.InfoArgsz.ShouldBe([24u, 40u]);
            device.Info.Flags.ShouldBe(VfioDeviceFlags.Pci | VfioDeviceFlags.Capabilities);
            device.Info.Capabilities.ShouldHaveSingleItem().Offset.ShouldBe(24);
            device.Info.PciAtomicCompleter.ShouldBe(VfioPciAtomicCompleter.Comp32 | VfioPciAtomicCompleter.Comp64);
        }
    }

    [Fact]
    public void Constructor_GetInfoFails_ThrowsNamingTheDeviceAndClosesTheOwnedFd()
    {
        var kernel = new FakeDeviceKernel { DeviceInfoErrno = (int)Errno.ENOTTY };
        SafeFileHandle fd = FakeDeviceKernel.OpenDeviceFd();
        VfioException e = Should.Throw<VfioException>(() => new VfioDevice(kernel, fd, Name, ownsHandle: true));
        e.Errno.ShouldBe(Errno.ENOTTY);
        e.Operation.ShouldBe("VFIO_DEVICE_GET_INFO");
        e.ObjectName.ShouldBe(Name);
        fd.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public void Constructor_GetInfoFails_LeavesABorrowedFdOpen()
    {
        var kernel = new FakeDeviceKernel { DeviceInfoErrno = (int)Errno.EIO };
        using SafeFileHandle fd = FakeDeviceKernel.OpenDeviceFd();
        Should.Throw<VfioException>(() => new VfioDevice(kernel, fd, Name, ownsHandle: false));
        fd.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public void Constructor_Misuse_ThrowsArgumentExceptions()
    {
        var kernel = new FakeDeviceKernel();
        SafeFileHandle closed = FakeDeviceKernel.OpenDeviceFd();
        closed.Dispose();
        Should.Throw<ArgumentException>(() => new VfioDevice(kernel, closed, Name, ownsHandle: false));
        using SafeFileHandle fd = FakeDeviceKernel.OpenDeviceFd();
        Should.Throw<ArgumentException>(() => new VfioDevice(kernel, fd, "", ownsHandle: false));
        Should.Throw<ArgumentNullException>(() => new VfioDevice(null!, fd, Name, ownsHandle: false));
    }

    // ---- region info ----

    [Fact]
    public void GetRegion_NoCaps_OneCallAndCached()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            VfioRegionInfo region = device.GetRegion(7);
            region.Index.ShouldBe(7);
            region.Offset.ShouldBe(7UL << 40);
            region.Size.ShouldBe(0x100UL);
            region.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write);
            region.CanRead.ShouldBeTrue();
            region.CanWrite.ShouldBeTrue();
            region.CanMmap.ShouldBeFalse();
            region.Capabilities.ShouldBeEmpty();
            region.SparseMmapAreas.ShouldBeNull();
            region.Type.ShouldBeNull();
            region.IsMsixMappable.ShouldBeFalse();
            kernel.RegionInfoCalls.ShouldBe(1);
            device.GetRegion(7).ShouldBeSameAs(region);
            kernel.RegionInfoCalls.ShouldBe(1);
        }
    }

    [Fact]
    public void GetRegion_WithCaps_RetriesOnceWithTheKernelsArgszAndParsesEveryCapability()
    {
        byte[] caps = new CapBuilder(32).Sparse((0, 0x2000), (0x3000, 0x1000), (0x8000, 0)).Type(0x80008086, 1).MsixMappable().Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            VfioRegionInfo region = device.GetRegion(0);
            kernel.InfoArgsz.Skip(1).ShouldBe([32u, (uint)(32 + caps.Length)]);
            region.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write | VfioRegionFlags.Mmap | VfioRegionFlags.Capabilities);
            region.Capabilities.Count.ShouldBe(3);
            region.SparseMmapAreas.ShouldBe([new VfioSparseMmapArea(0, 0x2000), new VfioSparseMmapArea(0x3000, 0x1000), new VfioSparseMmapArea(0x8000, 0)]);
            region.Type.ShouldBe(new VfioRegionType(0x80008086, 1));
            region.Type!.Value.IsPciVendorType.ShouldBeTrue();
            region.Type!.Value.PciVendorId.ShouldBe((ushort)0x8086);
            region.IsMsixMappable.ShouldBeTrue();
        }
    }

    [Fact]
    public void GetRegion_CapsLargerThanTheStackBuffer_UseARentedBuffer()
    {
        var areas = Enumerable.Range(0, 40).Select(i => ((ulong)i * 0x1000, 0x1000UL)).ToArray();
        byte[] caps = new CapBuilder(32).Sparse(areas).Build();   // 32 + 8 + 8 + 640 bytes
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => { k.Regions[0].Size = 0x40000; k.Regions[0].Caps = caps; });
        using (device)
        {
            device.GetRegion(0).SparseMmapAreas!.Count.ShouldBe(40);
            kernel.InfoArgsz.Last().ShouldBe((uint)(32 + caps.Length));
        }
    }

    [Fact]
    public void GetRegion_KernelKeepsAskingForMore_GivesUpWithAVfioException()
    {
        byte[] caps = new CapBuilder(32).MsixMappable().Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => { k.Regions[0].Caps = caps; k.Regions[0].KeepGrowing = true; });
        using (device)
        {
            Should.Throw<VfioException>(() => device.GetRegion(0)).Message.ShouldContain("still asks for a larger buffer (64 bytes) after 4 attempts");
            kernel.InfoArgsz.Skip(1).ShouldBe([32u, 40u, 48u, 56u]);
        }
    }

    [Fact]
    public void GetRegion_ImplausibleArgsz_IsRejected()
    {
        byte[] caps = new CapBuilder(32).MsixMappable().Build();
        (VfioDevice device, FakeDeviceKernel _) = Create(k => { k.Regions[0].Caps = caps; k.Regions[0].RequiredArgsz = 0x7000_0000; });
        using (device)
        {
            Should.Throw<VfioException>(() => device.GetRegion(0)).Message.ShouldContain("more than the 1048576 bytes accepted");
        }
    }

    [Fact]
    public void GetRegion_UnknownIndex_SurfacesTheKernelsEinval()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(() => device.GetRegion(8));
            e.Errno.ShouldBe(Errno.EINVAL);
            e.Operation.ShouldBe("VFIO_DEVICE_GET_REGION_INFO");
            e.ObjectName.ShouldBe($"{Name} region 8");
            e.Message.ShouldContain($"VFIO_DEVICE_GET_REGION_INFO failed on {Name} region 8");
            // Beyond num_regions the kernel is asked too (its EINVAL, not ours).
            Should.Throw<VfioException>(() => device.GetRegion(100)).Errno.ShouldBe(Errno.EINVAL);
            kernel.RegionInfoCalls.ShouldBe(2);
            Should.Throw<ArgumentOutOfRangeException>(() => device.GetRegion(-1));
        }
    }

    [Fact]
    public void GetRegion_MalformedChain_NamesDeviceRegionAndOffset()
    {
        byte[] caps = new CapBuilder(32).MsixMappable().SetNext(0, 32).Build();
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(() => device.GetRegion(0));
            e.Operation.ShouldBe("VFIO_DEVICE_GET_REGION_INFO");
            e.ObjectName.ShouldBe($"{Name} region 0");
            e.Message.ShouldContain("malformed capability chain: the capability 3 at 0x20 has next pointer 0x20");
        }
    }

    [Fact]
    public void GetRegion_SparseCapWithMoreAreasThanBytes_IsRejected()
    {
        byte[] caps = new CapBuilder(32).Sparse((0, 0x1000)).Build();
        BitConverter.TryWriteBytes(caps.AsSpan(8), 1000u);   // nr_areas
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            Should.Throw<VfioException>(() => device.GetRegion(0)).Message.ShouldContain("SPARSE_MMAP (1000 areas) capability at 0x20 needs 16016 bytes but only 32 are available");
        }
    }

    [Fact]
    public void GetRegion_TruncatedTypeCap_IsRejected()
    {
        byte[] caps = new CapBuilder(32).Add(VfioUapi.VFIO_REGION_INFO_CAP_TYPE, 1, new byte[4]).Build();
        caps = caps[..12];
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            Should.Throw<VfioException>(() => device.GetRegion(0)).Message.ShouldContain("the TYPE capability at 0x20 needs 16 bytes but only 12");
        }
    }

    [Fact]
    public void GetRegion_SparseAreaOutsideTheRegion_IsRejected()
    {
        byte[] caps = new CapBuilder(32).Sparse((0xF000, 0x2000)).Build();
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            Should.Throw<VfioException>(() => device.GetRegion(0)).Message.ShouldContain("sparse mmap area 0 (0xF000+0x2000)");
        }
    }

    // ---- region access by pread/pwrite ----

    [Fact]
    public void ReadAndWriteRegion_AllWidths_LittleEndianAtTheRegionsFileOffset()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            byte[] memory = kernel.Regions[0].Memory;
            device.WriteRegion32(0, 0x10, 0x11223344);
            memory[0x10..0x14].ShouldBe(new byte[] { 0x44, 0x33, 0x22, 0x11 });
            kernel.LastAccessOffset.ShouldBe(0x10);
            device.ReadRegion32(0, 0x10).ShouldBe(0x11223344u);
            device.WriteRegion8(0, 0x20, 0xAB);
            device.ReadRegion8(0, 0x20).ShouldBe((byte)0xAB);
            device.WriteRegion16(0, 0x22, 0xBEEF);
            device.ReadRegion16(0, 0x22).ShouldBe((ushort)0xBEEF);
            memory[0x22].ShouldBe((byte)0xEF);
            device.WriteRegion64(0, 0x28, 0x0102030405060708);
            device.ReadRegion64(0, 0x28).ShouldBe(0x0102030405060708UL);
            memory[0x28].ShouldBe((byte)0x08);

            device.WriteRegion32(7, 0x04, 0x00100006);
            kernel.LastAccessOffset.ShouldBe((7L << 40) + 4);
            kernel.Regions[7].Memory[4].ShouldBe((byte)0x06);

            Span<byte> span = stackalloc byte[6];
            device.ReadRegion(0, 0x10, span);
            span.ToArray().ShouldBe(new byte[] { 0x44, 0x33, 0x22, 0x11, 0, 0 });
            device.WriteRegion(0, 0x100, [1, 2, 3]);
            memory[0x100..0x103].ShouldBe(new byte[] { 1, 2, 3 });
        }
    }

    [Fact]
    public void ReadRegion_OutsideTheRegion_ThrowsWithoutCallingTheKernel()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            device.ReadRegion32(7, 0xFC);
            int calls = kernel.PReadCalls;
            Should.Throw<ArgumentOutOfRangeException>(() => device.ReadRegion32(7, 0xFE)).Message.ShouldContain($"outside {Name} region 7 (0x100 bytes)");
            Should.Throw<ArgumentOutOfRangeException>(() => device.ReadRegion8(7, 0x100));
            Should.Throw<ArgumentOutOfRangeException>(() => device.ReadRegion64(7, ulong.MaxValue - 3));
            Should.Throw<ArgumentOutOfRangeException>(() => device.WriteRegion(7, 0xF0, new byte[0x11]));
            kernel.PReadCalls.ShouldBe(calls);
        }
    }

    [Fact]
    public void ReadRegion_ShortTransfer_ThrowsVfioException()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.ShortBy = 2);
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(() => device.ReadRegion32(0, 0));
            e.Operation.ShouldBe("pread");
            e.ObjectName.ShouldBe($"{Name} region 0 offset 0x0");
            e.Message.ShouldContain("short transfer: 2 of 4 bytes");
            Should.Throw<VfioException>(() => device.WriteRegion64(0, 8, 1)).Message.ShouldContain("short transfer: 6 of 8 bytes");
        }
    }

    [Fact]
    public void ReadRegion_KernelError_NamesTheOperationRegionAndOffset()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.AccessErrno = (int)Errno.EIO);
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(() => device.ReadRegion16(0, 0x40));
            e.Errno.ShouldBe(Errno.EIO);
            e.Operation.ShouldBe("pread");
            e.ObjectName.ShouldBe($"{Name} region 0 offset 0x40");
            Should.Throw<VfioException>(() => device.WriteRegion8(0, 0x40, 1)).Operation.ShouldBe("pwrite");
        }
    }

    // ---- mapping ----

    [Fact]
    public void MapRegion_WithoutSparseCap_MapsTheWholeRegionOnce()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(0))
        {
            kernel.Maps.ShouldBe([(0L, 0x10000UL, MemoryProtection.ReadWrite)]);
            bar.RegionIndex.ShouldBe(0);
            bar.RegionSize.ShouldBe(0x10000UL);
            VfioMappedArea area = bar.Areas.ShouldHaveSingleItem();
            area.Offset.ShouldBe(0UL);
            area.Size.ShouldBe(0x10000UL);
            bar.Write32(0xFFFC, 0xCAFEF00D);
            bar.Read32(0xFFFC).ShouldBe(0xCAFEF00Du);
            area.Mapping.Read32(0xFFFC).ShouldBe(0xCAFEF00Du);
            bar.Write8(1, 7);
            bar.Read8(1).ShouldBe((byte)7);
            bar.Write16(2, 0x1234);
            bar.Read16(2).ShouldBe((ushort)0x1234);
            bar.Write64(8, ulong.MaxValue);
            bar.Read64(8).ShouldBe(ulong.MaxValue);
            Should.Throw<ArgumentOutOfRangeException>(() => bar.Read32(0x10000));
        }
    }

    [Fact]
    public void MapRegion_PlacesEachAreaAtItsSizeRoundedToAPowerOfTwo_PagesWhereTheKernelChooses()
    {
        byte[] caps = new CapBuilder(32).Sparse((0x8000, 0x1000), (0, 0x3000)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[2] = new FakeRegion { Flags = 7, Size = 0x10000, Offset = 2UL << 40, Caps = caps });
        using (device)
        using (device.MapRegion(0))
        using (device.MapRegion(2))
        {
            // Region 0 (64 KiB, whole) at a 64 KiB boundary; region 2's 12 KiB area at 16 KiB, its one-page area anywhere.
            kernel.MapAlignments.ShouldBe([0x10000UL, 0x4000UL, 0UL]);
        }
    }

    [Theory]
    [InlineData(0x1000UL, 0x1000UL)]
    [InlineData(0x800UL, 0x1000UL)]
    [InlineData(0x3000UL, 0x4000UL)]
    [InlineData(2UL << 20, 2UL << 20)]
    [InlineData((1UL << 30) - 0x1000, 1UL << 30)]
    [InlineData(1UL << 30, 1UL << 30)]
    [InlineData(3UL << 30, 1UL << 30)]
    [InlineData(64UL << 30, 1UL << 30)]
    public void MappingAlignment_IsTheSizeRoundedUpToAPowerOfTwo_CappedAt1GiB(ulong size, ulong alignment)
        => VfioDevice.MappingAlignment(size).ShouldBe(alignment);

    [Fact]
    public void MapRegion_SparseAreas_MapsEachAreaAndRoutesByOffset()
    {
        byte[] caps = new CapBuilder(32).Sparse((0x3000, 0x1000), (0, 0x2000), (0x2000, 0)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[2] = new FakeRegion { Flags = 7, Size = 0x4000, Offset = 2UL << 40, Caps = caps });
        using (device)
        using (VfioRegionMapping bar = device.MapRegion(2))
        {
            // Sorted by offset; the zero-size area is skipped.
            kernel.Maps.ShouldBe([((2L << 40) + 0, 0x2000UL, MemoryProtection.ReadWrite), ((2L << 40) + 0x3000, 0x1000UL, MemoryProtection.ReadWrite)]);
            bar.Areas.Select(a => (a.Offset, a.Size)).ShouldBe([(0UL, 0x2000UL), (0x3000UL, 0x1000UL)]);
            bar.Write32(0x3004, 42);
            kernel.Mappings[1].Read32(4).ShouldBe(42u);
            bar.Write32(0x1FFC, 43);
            kernel.Mappings[0].Read32(0x1FFC).ShouldBe(43u);
            bar.IsMapped(0x2000, 4).ShouldBeFalse();
            bar.IsMapped(0x1FFC, 8).ShouldBeFalse();
            bar.IsMapped(0x3000, 0x1000).ShouldBeTrue();

            // The hole (e.g. an MSI-X table left out by the kernel): a clear pointer to pread/pwrite.
            ArgumentOutOfRangeException e = Should.Throw<ArgumentOutOfRangeException>(() => bar.Read32(0x2000));
            e.Message.ShouldContain($"0x2000 of {Name} region 2 is not inside a mapped area (mapped: 0x0-0x1FFF, 0x3000-0x3FFF)");
            e.Message.ShouldContain("pread/pwrite");
            Should.Throw<ArgumentOutOfRangeException>(() => bar.Read64(0x1FFC));   // straddles the end of an area
        }
    }

    [Fact]
    public void MapRegion_ReadOnlyRegion_MapsReadOnly()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[1] = new FakeRegion { Flags = VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_MMAP });
        using (device)
        using (device.MapRegion(1))
        {
            kernel.Maps.ShouldHaveSingleItem().Protection.ShouldBe(MemoryProtection.Read);
        }
    }

    [Fact]
    public void MapRegion_WithoutMmapFlag_ThrowsInvalidOperation()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            Should.Throw<InvalidOperationException>(() => device.MapRegion(7)).Message.ShouldContain($"{Name} region 7 cannot be mapped");
            kernel.Maps.ShouldBeEmpty();
        }
    }

    [Fact]
    public void MapRegion_SparseCapWithoutAreas_ThrowsInvalidOperation()
    {
        byte[] caps = new CapBuilder(32).Sparse().Build();
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.Regions[0].Caps = caps);
        using (device)
        {
            Should.Throw<InvalidOperationException>(() => device.MapRegion(0)).Message.ShouldContain("no mmap-able area");
        }
    }

    [Fact]
    public void MapRegion_UnalignedOrOverlappingAreas_AreRejected()
    {
        byte[] unaligned = new CapBuilder(32).Sparse((0x800, 0x800)).Build();
        byte[] overlapping = new CapBuilder(32).Sparse((0, 0x2000), (0x1000, 0x1000)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k =>
        {
            k.Regions[1] = new FakeRegion { Flags = 7, Caps = unaligned };
            k.Regions[2] = new FakeRegion { Flags = 7, Size = 0x4000, Caps = overlapping };
        });
        using (device)
        {
            Should.Throw<VfioException>(() => device.MapRegion(1)).Message.ShouldContain("0x800 is not aligned");
            Should.Throw<VfioException>(() => device.MapRegion(2)).Message.ShouldContain("overlap");
            kernel.Maps.ShouldBeEmpty();
        }
    }

    [Fact]
    public void MapRegion_SecondAreaFails_UnmapsTheFirstAndNamesTheArea()
    {
        byte[] caps = new CapBuilder(32).Sparse((0, 0x1000), (0x2000, 0x1000)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k =>
        {
            k.Regions[0].Caps = caps;
            k.MapFailsFromCall = 2;
        });
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(() => device.MapRegion(0));
            e.Errno.ShouldBe(Errno.EINVAL);
            e.Operation.ShouldBe("mmap");
            e.ObjectName.ShouldBe($"{Name} region 0 area 0x2000+0x1000");
            kernel.Mappings.ShouldHaveSingleItem().IsClosed.ShouldBeTrue();
        }
    }

    [Fact]
    public void MapRegion_Dispose_UnmapsEveryAreaAndRefusesAccess_AndTheDevicesDisposalUnmapsTheRest()
    {
        byte[] caps = new CapBuilder(32).Sparse((0, 0x1000), (0x2000, 0x1000)).Build();
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.Regions[0].Caps = caps);
        VfioRegionMapping disposedFirst = device.MapRegion(0);
        disposedFirst.Write32(0, 5);
        disposedFirst.Read32(0).ShouldBe(5u);
        disposedFirst.Dispose();
        kernel.Mappings.ShouldAllBe(m => m.IsClosed);
        Should.Throw<ObjectDisposedException>(() => disposedFirst.Read32(0));
        disposedFirst.Dispose();

        // A mapping still alive when the device goes (its detach) is unmapped with it: on Linux it would keep the
        // device open and the next attach would fail.
        VfioRegionMapping alive = device.MapRegion(0);
        device.Dispose();
        kernel.Mappings.ShouldAllBe(m => m.IsClosed);
        Should.Throw<ObjectDisposedException>(() => alive.Write32(0, 1)).Message.ShouldContain("detached");
        alive.Dispose();
        Should.Throw<ObjectDisposedException>(() => device.MapRegion(0));
    }

    // ---- IRQs ----

    [Fact]
    public void GetIrq_ReturnsFlagsAndCount_AndSurfacesEinval()
    {
        (VfioDevice device, FakeDeviceKernel _) = Create(k =>
        {
            k.Irqs[0] = (VfioUapi.VFIO_IRQ_INFO_EVENTFD | VfioUapi.VFIO_IRQ_INFO_MASKABLE | VfioUapi.VFIO_IRQ_INFO_AUTOMASKED, 1);
            k.Irqs[2] = (VfioUapi.VFIO_IRQ_INFO_EVENTFD | VfioUapi.VFIO_IRQ_INFO_NORESIZE, 65);
        });
        using (device)
        {
            VfioIrqInfo intx = device.GetIrq(0);
            intx.ShouldBe(new VfioIrqInfo(0, VfioIrqFlags.EventFd | VfioIrqFlags.Maskable | VfioIrqFlags.Automasked, 1));
            intx.IsMaskable.ShouldBeTrue();
            intx.IsAutomasked.ShouldBeTrue();
            intx.SupportsEventFd.ShouldBeTrue();
            intx.IsNoResize.ShouldBeFalse();
            VfioIrqInfo msix = device.GetIrq(2);
            msix.Count.ShouldBe(65);
            msix.IsNoResize.ShouldBeTrue();
            VfioException e = Should.Throw<VfioException>(() => device.GetIrq(3));
            e.Errno.ShouldBe(Errno.EINVAL);
            e.Operation.ShouldBe("VFIO_DEVICE_GET_IRQ_INFO");
            e.ObjectName.ShouldBe($"{Name} IRQ index 3");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(200)]
    public void SetIrqEventFds_BuildsTheKernelsBytes(int vectors)
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        var events = new InterruptEvent?[vectors];
        try
        {
            for (int i = 0; i < vectors; i++)
            {
                events[i] = i % 3 == 1 ? null : new InterruptEvent();
            }
            using (device)
            {
                device.SetIrqEventFds(2, 5, events);
            }
            int size = 20 + (4 * vectors);
            kernel.LastSetIrqsLength.ShouldBe(size);
            byte[] bytes = kernel.LastSetIrqs;
            BitConverter.ToUInt32(bytes, 0).ShouldBe((uint)size);                 // argsz
            BitConverter.ToUInt32(bytes, 4).ShouldBe(0x24u);                      // DATA_EVENTFD | ACTION_TRIGGER
            BitConverter.ToUInt32(bytes, 8).ShouldBe(2u);                         // index
            BitConverter.ToUInt32(bytes, 12).ShouldBe(5u);                        // start
            BitConverter.ToUInt32(bytes, 16).ShouldBe((uint)vectors);             // count
            for (int i = 0; i < vectors; i++)
            {
                int expected = events[i] is { } e ? (int)e.Handle.DangerousGetHandle() : -1;
                BitConverter.ToInt32(bytes, 20 + (4 * i)).ShouldBe(expected);
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
    public void SetIrqEventFds_PositiveAnswer_MeansNothingWasEnabled()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.SetIrqsResult = 2);
        using (device)
        using (var a = new InterruptEvent())
        {
            InterruptEvent?[] events = [a, a, a, a];
            VfioException e = Should.Throw<VfioException>(() => device.SetIrqEventFds(2, 0, events));
            e.Operation.ShouldBe("VFIO_DEVICE_SET_IRQS");
            e.ObjectName.ShouldBe($"{Name} IRQ index 2");
            e.Message.ShouldContain("could allocate only 2 of the 4 vectors asked for, so it enabled none");
            device.TrySetIrqEventFds(2, 0, events, out int available).ShouldBeFalse();
            available.ShouldBe(2);
            kernel.SetIrqsResult = 0;
            device.TrySetIrqEventFds(2, 0, events, out available).ShouldBeTrue();
            available.ShouldBe(0);
        }
    }

    [Fact]
    public void SetIrqEventFds_KernelError_NamesTheIoctlDeviceAndIndex()
    {
        (VfioDevice device, FakeDeviceKernel _) = Create(k => k.SetIrqsResult = -(int)Errno.EINVAL);
        using (device)
        using (var a = new InterruptEvent())
        {
            VfioException e = Should.Throw<VfioException>(() => device.SetIrqEventFds(1, 0, [a]));
            e.Errno.ShouldBe(Errno.EINVAL);
            e.Message.ShouldStartWith($"VFIO_DEVICE_SET_IRQS failed on {Name} IRQ index 1: ");
        }
    }

    [Fact]
    public void SetIrqEventFds_Misuse_ThrowsArgumentExceptions()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        using (var a = new InterruptEvent())
        {
            Should.Throw<ArgumentException>(() => device.SetIrqEventFds(1, 0, []));
            Should.Throw<ArgumentOutOfRangeException>(() => device.SetIrqEventFds(-1, 0, [a]));
            Should.Throw<ArgumentOutOfRangeException>(() => device.SetIrqEventFds(1, -1, [a]));
            Should.Throw<ArgumentOutOfRangeException>(() => device.TriggerIrq(1, 0, 0));
            kernel.SetIrqsCalls.ShouldBe(0);
        }
    }

    [Fact]
    public void SetIrqEventFds_DisposedEvent_ThrowsAndSendsNothing()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        using (var a = new InterruptEvent())
        {
            var gone = new InterruptEvent();
            gone.Dispose();
            Should.Throw<ObjectDisposedException>(() => device.SetIrqEventFds(1, 0, [a, gone]));
            kernel.SetIrqsCalls.ShouldBe(0);
        }
    }

    [Theory]
    [InlineData("disable", 0x21u, 0u, 0u)]
    [InlineData("mask", 0x09u, 0u, 1u)]
    [InlineData("unmask", 0x11u, 0u, 1u)]
    [InlineData("trigger", 0x21u, 2u, 3u)]
    public void DataNoneActions_BuildTheKernelsBytes(string action, uint flags, uint start, uint count)
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            switch (action)
            {
                case "disable": device.DisableIrq(4); break;
                case "mask": device.MaskIrq(4); break;
                case "unmask": device.UnmaskIrq(4); break;
                default: device.TriggerIrq(4, 2, 3); break;
            }
            kernel.LastSetIrqsLength.ShouldBe(20);
            byte[] bytes = kernel.LastSetIrqs;
            BitConverter.ToUInt32(bytes, 0).ShouldBe(20u);
            BitConverter.ToUInt32(bytes, 4).ShouldBe(flags);
            BitConverter.ToUInt32(bytes, 8).ShouldBe(4u);
            BitConverter.ToUInt32(bytes, 12).ShouldBe(start);
            BitConverter.ToUInt32(bytes, 16).ShouldBe(count);
        }
    }

    [Fact]
    public void UnmaskAndMaskEventFds_BuildTheKernelsBytes()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        using (var resample = new InterruptEvent())
        {
            device.SetIrqUnmaskEventFd(0, resample);
            kernel.LastSetIrqsLength.ShouldBe(24);
            BitConverter.ToUInt32(kernel.LastSetIrqs, 4).ShouldBe(0x14u);   // DATA_EVENTFD | ACTION_UNMASK
            BitConverter.ToUInt32(kernel.LastSetIrqs, 16).ShouldBe(1u);
            BitConverter.ToInt32(kernel.LastSetIrqs, 20).ShouldBe((int)resample.Handle.DangerousGetHandle());
            device.SetIrqUnmaskEventFd(0, null);
            BitConverter.ToInt32(kernel.LastSetIrqs, 20).ShouldBe(-1);
            device.SetIrqMaskEventFd(0, resample);
            BitConverter.ToUInt32(kernel.LastSetIrqs, 4).ShouldBe(0x0Cu);   // DATA_EVENTFD | ACTION_MASK
        }
    }

    // ---- reset, features ----

    [Fact]
    public void Reset_CallsTheKernel_AndExplainsEinvalWithoutTheResetFlag()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            device.Reset();
            kernel.ResetCalls.ShouldBe(1);
            kernel.ResetResult = -(int)Errno.EINVAL;
            VfioException e = Should.Throw<VfioException>(device.Reset);
            kernel.ResetCalls.ShouldBe(2);
            e.Errno.ShouldBe(Errno.EINVAL);
            e.Operation.ShouldBe("VFIO_DEVICE_RESET");
            e.ObjectName.ShouldBe(Name);
            e.Hint!.ShouldContain("VFIO_DEVICE_FLAGS_RESET is clear");
        }
    }

    [Fact]
    public void Reset_EinvalWithTheResetFlag_HasNoSuchHint()
    {
        (VfioDevice device, FakeDeviceKernel _) = Create(k => { k.DeviceFlags |= VfioUapi.VFIO_DEVICE_FLAGS_RESET; k.ResetResult = -(int)Errno.EAGAIN; });
        using (device)
        {
            VfioException e = Should.Throw<VfioException>(device.Reset);
            e.Errno.ShouldBe(Errno.EAGAIN);
            (e.Hint ?? "").ShouldNotContain("VFIO_DEVICE_FLAGS_RESET");
        }
    }

    [Fact]
    public void ProbeFeature_SendsProbeFlags_AndMapsEnottyAndEinvalToFalse()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create();
        using (device)
        {
            device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VfioFeatureAccess.Set).ShouldBeTrue();
            kernel.LastFeature.Length.ShouldBe(8);
            BitConverter.ToUInt32(kernel.LastFeature, 0).ShouldBe(8u);
            BitConverter.ToUInt32(kernel.LastFeature, 4).ShouldBe(3u | VfioUapi.VFIO_DEVICE_FEATURE_SET | VfioUapi.VFIO_DEVICE_FEATURE_PROBE);
            kernel.FeatureResult = -(int)Errno.ENOTTY;
            device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_MIGRATION, VfioFeatureAccess.Get).ShouldBeFalse();
            kernel.FeatureResult = -(int)Errno.EINVAL;
            device.ProbeFeature(0, VfioFeatureAccess.Get).ShouldBeFalse();
            kernel.FeatureResult = -(int)Errno.EIO;
            Should.Throw<VfioException>(() => device.ProbeFeature(1, VfioFeatureAccess.None)).ObjectName.ShouldBe($"{Name} feature 1");
            Should.Throw<ArgumentOutOfRangeException>(() => device.ProbeFeature(0x10000, VfioFeatureAccess.Get));
        }
    }

    [Fact]
    public void GetAndSetFeature_CarryThePayloadBothWays()
    {
        (VfioDevice device, FakeDeviceKernel kernel) = Create(k => k.FeatureReply = [7, 0, 0, 0, 0, 0, 0, 0]);
        using (device)
        {
            var data = new byte[8];
            device.GetFeature(VfioUapi.VFIO_DEVICE_FEATURE_MIGRATION, data);
            BitConverter.ToUInt32(kernel.LastFeature, 0).ShouldBe(16u);
            BitConverter.ToUInt32(kernel.LastFeature, 4).ShouldBe(1u | VfioUapi.VFIO_DEVICE_FEATURE_GET);
            data[0].ShouldBe((byte)7);

            byte[] state = [2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
            kernel.FeatureReply = [2, 0, 0, 0, 9, 0, 0, 0];
            device.SetFeature(VfioUapi.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, state);
            kernel.LastFeature[8..].ShouldBe(new byte[] { 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF });
            BitConverter.ToUInt32(kernel.LastFeature, 4).ShouldBe(2u | VfioUapi.VFIO_DEVICE_FEATURE_SET);
            BitConverter.ToInt32(state, 4).ShouldBe(9);   // data_fd written back

            kernel.FeatureReply = null;
            var big = new byte[1000];
            device.SetFeature(6, big);
            kernel.LastFeature.Length.ShouldBe(1008);
            device.SetFeature(VfioUapi.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, []);
            kernel.LastFeature.Length.ShouldBe(8);

            kernel.FeatureResult = -(int)Errno.ENOTTY;
            VfioException e = Should.Throw<VfioException>(() => device.GetFeature(9, new byte[8]));
            e.Operation.ShouldBe("VFIO_DEVICE_FEATURE");
            e.Errno.ShouldBe(Errno.ENOTTY);
        }
    }

    // ---- disposal ----

    [Fact]
    public void Dispose_ClosesAnOwnedFd_AndEverythingThrowsObjectDisposed()
    {
        var kernel = new FakeDeviceKernel();
        kernel.Regions[0] = new FakeRegion { Flags = 7 };
        SafeFileHandle fd = FakeDeviceKernel.OpenDeviceFd();
        var device = new VfioDevice(kernel, fd, Name, ownsHandle: true);
        device.GetRegion(0);
        device.Dispose();
        fd.IsClosed.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => device.GetRegion(0));
        Should.Throw<ObjectDisposedException>(() => device.ReadRegion32(0, 0));
        Should.Throw<ObjectDisposedException>(() => device.MapRegion(0));
        Should.Throw<ObjectDisposedException>(() => device.GetIrq(0));
        Should.Throw<ObjectDisposedException>(() => device.DisableIrq(0));
        Should.Throw<ObjectDisposedException>(device.Reset);
        Should.Throw<ObjectDisposedException>(() => device.ProbeFeature(0, VfioFeatureAccess.None));
        Should.Throw<ObjectDisposedException>(() => device.Handle);
        device.Dispose();
    }

    [Fact]
    public void Dispose_LeavesABorrowedFdOpen()
    {
        var kernel = new FakeDeviceKernel();
        using SafeFileHandle fd = FakeDeviceKernel.OpenDeviceFd();
        var device = new VfioDevice(kernel, fd, Name, ownsHandle: false);
        device.Handle.ShouldBeSameAs(fd);
        device.Kernel.ShouldBeSameAs(kernel);
        device.Dispose();
        fd.IsClosed.ShouldBeFalse();
    }
}
