// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>The Type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c) through the container fd, with the real uAPI structs.</summary>
public sealed class Type1Tests
{
    private const int EINVAL = -(int)Errno.EINVAL;
    private const ulong Iova = 0x100000;

    [StructLayout(LayoutKind.Sequential)]
    private struct UnmapWithBitmap
    {
        public vfio_iommu_type1_dma_unmap unmap;
        public vfio_bitmap bitmap;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DirtyGet
    {
        public vfio_iommu_type1_dirty_bitmap header;
        public vfio_iommu_type1_dirty_bitmap_get get;
    }

    /// <summary>A v2 (or v1) container with group 2 attached; disposes everything.</summary>
    private sealed class Fixture : IDisposable
    {
        internal Fixture(uint type = VfioUapi.VFIO_TYPE1v2_IOMMU, Action<SimulatedTopology>? configure = null, ulong bufferSize = 0x10000)
        {
            M = new LegacyMachine(configure);
            (Container, Group) = M.Ready(type);
            Buffer = new ProcessPages(bufferSize);
        }

        internal LegacyMachine M { get; }

        internal SafeFileHandle Container { get; }

        internal SafeFileHandle Group { get; }

        internal ProcessPages Buffer { get; }

        internal SimDevice Device => M.Device(LegacyMachine.Dev2);

        internal int Map(ulong offset, ulong iova, ulong size, uint flags = LegacyMachine.ReadWrite)
            => M.Map(Container, Buffer.Vaddr + offset, iova, size, flags);

        internal int Unmap(ulong iova, ulong size, out ulong unmapped, uint flags = 0) => M.Unmap(Container, iova, size, out unmapped, flags);

        internal int Dirty(uint flags, uint argsz = 8)
        {
            var dirty = new vfio_iommu_type1_dirty_bitmap { argsz = argsz, flags = flags };
            return M.Ioctl(Container, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, ref dirty);
        }

        internal int GetDirty(ulong iova, ulong size, ulong[] bitmap, ulong pgsize = 4096, ulong? bitmapBytes = null)
        {
            GCHandle pin = GCHandle.Alloc(bitmap, GCHandleType.Pinned);
            try
            {
                var request = new DirtyGet
                {
                    header = new vfio_iommu_type1_dirty_bitmap { argsz = 48, flags = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
                    get = new vfio_iommu_type1_dirty_bitmap_get
                    {
                        iova = iova,
                        size = size,
                        bitmap = new vfio_bitmap { pgsize = pgsize, size = bitmapBytes ?? (ulong)bitmap.Length * 8, data = (ulong)pin.AddrOfPinnedObject() },
                    },
                };
                return M.Ioctl(Container, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, ref request);
            }
            finally
            {
                pin.Free();
            }
        }

        public void Dispose()
        {
            Group.Dispose();
            Container.Dispose();
            M.Dispose();
            Buffer.Dispose();
        }
    }

    private static byte[] GetInfo(Fixture f, uint argsz, out int rc, int bufferSize = 256)
    {
        byte[] buffer = new byte[bufferSize];
        buffer.AsSpan().Fill(0xcc);
        MemoryMarshal.Write(buffer, argsz);
        rc = f.M.Kernel.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_GET_INFO, buffer.AsSpan());
        return buffer;
    }

    // ---- GET_INFO (vfio_iommu_type1_get_info) ----

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    public void GetInfo_FullBuffer_FlagsPageSizesAndChainAsOnTheTestbed()
    {
        using var f = new Fixture();
        byte[] b = GetInfo(f, 256, out int rc);
        rc.ShouldBe(0);
        vfio_iommu_type1_info info = MemoryMarshal.Read<vfio_iommu_type1_info>(b);
        info.argsz.ShouldBe(256u);
        info.flags.ShouldBe(VfioUapi.VFIO_IOMMU_INFO_PGSIZES | VfioUapi.VFIO_IOMMU_INFO_CAPS);
        info.iova_pgsizes.ShouldBe(0x40201000UL);
        info.cap_offset.ShouldBe(24u);

        var migration = MemoryMarshal.Read<vfio_iommu_type1_info_cap_migration>(b.AsSpan(24));
        migration.header.id.ShouldBe(VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
        migration.header.version.ShouldBe((ushort)1);
        migration.header.next.ShouldBe(56u);
        migration.flags.ShouldBe(0u);
        migration.pgsize_bitmap.ShouldBe(4096UL);
        migration.max_dirty_bitmap_size.ShouldBe(268435456UL);

        var avail = MemoryMarshal.Read<vfio_iommu_type1_info_dma_avail>(b.AsSpan(56));
        avail.header.id.ShouldBe(VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
        avail.header.next.ShouldBe(72u);
        avail.avail.ShouldBe(65535u);

        var ranges = MemoryMarshal.Read<vfio_iommu_type1_info_cap_iova_range>(b.AsSpan(72));
        ranges.header.id.ShouldBe(VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
        ranges.header.version.ShouldBe((ushort)1);
        ranges.header.next.ShouldBe(0u);
        ranges.nr_iovas.ShouldBe(2u);
        var r0 = MemoryMarshal.Read<vfio_iova_range>(b.AsSpan(88));
        var r1 = MemoryMarshal.Read<vfio_iova_range>(b.AsSpan(104));
        (r0.start, r0.end).ShouldBe((0UL, 0xfedfffffUL));
        (r1.start, r1.end).ShouldBe((0xfef00000UL, 0xffffffffffffUL));
        b[120].ShouldBe((byte)0xcc, "nothing is written past the chain");
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    [Spec("drivers/vfio/vfio_main.c vfio_info_cap_add")]
    public void GetInfo_ArgszTooSmallForCaps_SucceedsWithNeededSizeAndNoCaps()
    {
        using var f = new Fixture();
        byte[] b = GetInfo(f, 24, out int rc);
        rc.ShouldBe(0);
        vfio_iommu_type1_info info = MemoryMarshal.Read<vfio_iommu_type1_info>(b);
        info.argsz.ShouldBe(120u);
        info.flags.ShouldBe(VfioUapi.VFIO_IOMMU_INFO_PGSIZES | VfioUapi.VFIO_IOMMU_INFO_CAPS);
        info.cap_offset.ShouldBe(0u);
        b[24].ShouldBe((byte)0xcc);
        // The second call with the size asked for gets the chain.
        b = GetInfo(f, 120, out rc);
        rc.ShouldBe(0);
        MemoryMarshal.Read<vfio_iommu_type1_info>(b).cap_offset.ShouldBe(24u);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    [Spec("include/uapi/linux/vfio.h argsz/flags")]
    public void GetInfo_Argsz16_CopiesBackOnly16Bytes()
    {
        using var f = new Fixture();
        byte[] b = GetInfo(f, 16, out int rc);
        rc.ShouldBe(0);
        MemoryMarshal.Read<uint>(b).ShouldBe(120u);
        MemoryMarshal.Read<ulong>(b.AsSpan(8)).ShouldBe(0x40201000UL);
        b.AsSpan(16, 8).ToArray().ShouldAllBe(x => x == 0xcc);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    public void GetInfo_ArgszBelowMinimum_Einval()
    {
        using var f = new Fixture();
        GetInfo(f, 15, out int rc);
        rc.ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    [Spec("drivers/vfio/vfio_iommu_type1.c struct vfio_iommu")]
    public void GetInfo_DmaAvail_CountsMappings()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, Iova + 0x1000, 0x1000).ShouldBe(0);
        MemoryMarshal.Read<vfio_iommu_type1_info_dma_avail>(GetInfo(f, 256, out _).AsSpan(56)).avail.ShouldBe(65533u);
        f.Unmap(Iova, 0x2000, out _).ShouldBe(0);
        MemoryMarshal.Read<vfio_iommu_type1_info_dma_avail>(GetInfo(f, 256, out _).AsSpan(56)).avail.ShouldBe(65535u);
    }

    // ---- MAP_DMA (vfio_dma_do_map) ----

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_ReadWrite_DeviceDmaReachesTheBuffer()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Device.DmaWrite(Iova + 0x1ffe, [0xaa, 0xbb, 0xcc, 0xdd]).ShouldBeTrue();
        f.Buffer.Span.Slice(0x1ffe, 4).ToArray().ShouldBe(new byte[] { 0xaa, 0xbb, 0xcc, 0xdd });
        byte[] read = new byte[2];
        f.Device.DmaRead(Iova + 0x1fff, read).ShouldBeTrue();
        read.ShouldBe(new byte[] { 0xbb, 0xcc });
        f.M.Kernel.LockedVmPages.ShouldBe(4UL);
    }

    [Theory]
    [InlineData(31u, LegacyMachine.ReadWrite)]
    [InlineData(32u, LegacyMachine.ReadWrite | 8u)]
    [InlineData(32u, 0u)]
    [InlineData(32u, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR | VfioUapi.VFIO_DMA_MAP_FLAG_READ)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_BadArgszOrFlags_Einval(uint argsz, uint flags)
    {
        using var f = new Fixture();
        f.M.Map(f.Container, f.Buffer.Vaddr, Iova, 0x1000, flags, argsz).ShouldBe(EINVAL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(0);
    }

    [Theory]
    [InlineData(0UL, Iova, 0UL)]
    [InlineData(0UL, Iova + 0x800, 0x1000UL)]
    [InlineData(0x10UL, Iova, 0x1000UL)]
    [InlineData(0UL, Iova, 0x1800UL)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_ZeroOrUnalignedSizeIovaOrVaddr_Einval(ulong vaddrOffset, ulong iova, ulong size)
    {
        using var f = new Fixture();
        f.Map(vaddrOffset, iova, size).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_IovaWraps_Einval()
    {
        using var f = new Fixture();
        f.Map(0, 0xffff_ffff_ffff_f000, 0x2000).ShouldBe(EINVAL);
        f.M.Map(f.Container, 0xffff_ffff_ffff_f000, Iova, 0x2000).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_OverlapsExisting_Eexist()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        f.Map(0x4000, Iova + 0x1000, 0x2000).ShouldBe(-(int)Errno.EEXIST);
        f.Map(0x4000, Iova - 0x1000, 0x2000).ShouldBe(-(int)Errno.EEXIST);
        f.Map(0x4000, Iova - 0x1000, 0x4000).ShouldBe(-(int)Errno.EEXIST);
        f.Map(0x4000, Iova + 0x2000, 0x1000).ShouldBe(0, "adjacent is not overlapping");
        f.Map(0x4000, Iova - 0x1000, 0x1000).ShouldBe(0);
    }

    [Theory]
    [InlineData(0xfee00000UL, 0x1000UL)]
    [InlineData(0xfed00000UL, 0x200000UL)]
    [InlineData(0xffff_ffff_f000UL, 0x2000UL)]
    [InlineData(0x1_0000_0000_0000UL, 0x1000UL)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c struct vfio_iommu")]
    public void Map_OutsideValidIovaRanges_Einval(ulong iova, ulong size)
    {
        using var f = new Fixture(bufferSize: 0x200000);
        f.Map(0, iova, size).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_IovaZeroAndTopOfRange_Allowed()
    {
        using var f = new Fixture();
        f.Map(0, 0, 0x1000).ShouldBe(0);
        f.Map(0x1000, 0xffff_ffff_f000, 0x1000).ShouldBe(0);
        f.Map(0x2000, 0xfef00000, 0x1000).ShouldBe(0);
        f.Device.DmaWrite(0, [5]).ShouldBeTrue();
        f.Buffer.Span[0].ShouldBe((byte)5);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_EntryLimitReached_Enospc()
    {
        using var f = new Fixture(configure: t => t.DmaEntryLimit = 2);
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, Iova + 0x1000, 0x1000).ShouldBe(0);
        f.Map(0x2000, Iova + 0x2000, 0x1000).ShouldBe(-(int)Errno.ENOSPC);
        // EEXIST is checked before ENOSPC.
        f.Map(0x2000, Iova, 0x1000).ShouldBe(-(int)Errno.EEXIST);
        MemoryMarshal.Read<vfio_iommu_type1_info_dma_avail>(GetInfo(f, 256, out _).AsSpan(56)).avail.ShouldBe(0u);
        f.Unmap(Iova, 0x1000, out _).ShouldBe(0);
        f.Map(0x2000, Iova + 0x2000, 0x1000).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_lock_acct")]
    public void Map_ExceedsMemlock_Enomem_AndUnmapReturnsTheCharge()
    {
        using var f = new Fixture(configure: t => t.MemlockLimit = 0x3000);
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        f.Map(0x2000, Iova + 0x2000, 0x2000).ShouldBe(-(int)Errno.ENOMEM);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
        MemoryMarshal.Read<vfio_iommu_type1_info_dma_avail>(GetInfo(f, 256, out _).AsSpan(56)).avail.ShouldBe(65534u);
        f.Map(0x2000, Iova + 0x2000, 0x1000).ShouldBe(0);
        f.M.Kernel.LockedVmPages.ShouldBe(3UL);
        f.Unmap(Iova, 0x2000, out _).ShouldBe(0);
        f.Map(0x4000, Iova + 0x4000, 0x2000).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_lock_acct")]
    public void Map_Memlock_IsPerProcessAcrossContainers()
    {
        using var f = new Fixture(configure: t => t.MemlockLimit = 0x2000);
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        using SafeFileHandle other = f.M.OpenContainer();
        using SafeFileHandle group3 = f.M.OpenGroup(3);
        f.M.SetContainer(group3, other).ShouldBe(0);
        f.M.SetIommu(other, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
        f.M.Map(other, f.Buffer.Vaddr, Iova, 0x1000).ShouldBe(-(int)Errno.ENOMEM);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_NullVaddr_Efault()
    {
        using var f = new Fixture();
        f.M.Map(f.Container, 0, Iova, 0x1000).ShouldBe(-(int)Errno.EFAULT);
        f.M.Type1(f.Container).MappingCount.ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_ReadOnly_DeviceWriteFaults_ReadWorks()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_READ).ShouldBe(0);
        f.Device.DmaWrite(Iova, [1]).ShouldBeFalse();
        f.Buffer.Span[0].ShouldBe((byte)0);
        f.M.Kernel.DmaFaults.ShouldContain(x => x.Iova == Iova && x.Write && x.Device == LegacyMachine.Dev2);
        f.Device.DmaRead(Iova, new byte[4]).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Map_WriteOnly_DeviceReadPasses_AsOnVtd_ReadOnly_DeviceWriteFaults()
    {
        // The testbed (Linux 6.12, QEMU's VT-d) lets a device read through a write-only mapping without a fault
        // (conformance: AWriteOnlyMapping_IsReadByTheDevice_AndAReadOnlyOneIsNotWritten).
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_WRITE).ShouldBe(0);
        f.Device.DmaRead(Iova, new byte[4]).ShouldBeTrue();
        f.Device.DmaWrite(Iova, [1]).ShouldBeTrue();
        f.Map(0x1000, Iova + 0x1000, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_READ).ShouldBe(0);
        f.Device.DmaWrite(Iova + 0x1000, [1]).ShouldBeFalse();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void Dma_AcrossAdjacentMappings_EachPageThroughItsOwnTranslation()
    {
        // An IOMMU translates page by page: a transfer runs across IOVA-adjacent mappings wherever their memory is.
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, Iova + 0x1000, 0x1000).ShouldBe(0);
        f.Map(0x3000, Iova + 0x2000, 0x1000).ShouldBe(0);
        f.Device.DmaWrite(Iova + 0xfff, [1, 2]).ShouldBeTrue();
        f.Buffer.Span.Slice(0xfff, 2).ToArray().ShouldBe(new byte[] { 1, 2 });
        f.Device.DmaWrite(Iova + 0x1fff, [3, 4]).ShouldBeTrue("IOVA-adjacent, not contiguous in process memory");
        f.Buffer.Span[0x1fff].ShouldBe((byte)3);
        f.Buffer.Span[0x3000].ShouldBe((byte)4);
        f.Buffer.Span[0x2000].ShouldBe((byte)0);
        f.Device.DmaWrite(Iova + 0x2fff, [3, 4]).ShouldBeFalse("runs past the last mapping");
        f.Device.DmaWrite(Iova - 1, [3, 4]).ShouldBeFalse("starts before the first mapping");
    }

    // ---- UNMAP_DMA (vfio_dma_do_unmap) ----

    [Theory]
    [InlineData(23u, 0u)]
    [InlineData(24u, 8u)]
    [InlineData(48u, VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL)]
    [InlineData(48u, VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR)]
    [InlineData(24u, VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_BadArgszOrFlags_Einval(uint argsz, uint flags)
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.M.Unmap(f.Container, Iova, 0x1000, out _, flags, argsz).ShouldBe(EINVAL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
    }

    [Theory]
    [InlineData(Iova + 0x800, 0x1000UL)]
    [InlineData(Iova, 0UL)]
    [InlineData(Iova, 0x800UL)]
    [InlineData(0xffff_ffff_ffff_f000UL, 0x2000UL)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_ZeroUnalignedOrWrapping_Einval(ulong iova, ulong size)
    {
        using var f = new Fixture();
        f.Unmap(iova, size, out _).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_V2_BisectingAMapping_Einval()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Unmap(Iova + 0x1000, 0x3000, out _).ShouldBe(EINVAL);
        f.Unmap(Iova, 0x1000, out _).ShouldBe(EINVAL);
        f.Unmap(Iova - 0x1000, 0x2000, out _).ShouldBe(EINVAL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_V2_RangeCoveringSeveral_RemovesThemAndReturnsTheirTotal()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, Iova + 0x2000, 0x2000).ShouldBe(0);
        f.Map(0x4000, Iova + 0x10000, 0x1000).ShouldBe(0);
        f.Unmap(Iova - 0x10000, 0x14000, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0x3000UL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
        f.M.Kernel.LockedVmPages.ShouldBe(1UL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_V2_NothingInRange_SucceedsWithSizeZero()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Unmap(Iova + 0x1000, 0x1000, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0UL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_V1_RequestStartingInsideAMapping_SucceedsWithSizeZero()
    {
        using var f = new Fixture(VfioUapi.VFIO_TYPE1_IOMMU);
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Unmap(Iova + 0x1000, 0x1000, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0UL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_V1_RequestCoveringTheStart_RemovesTheWholeMapping()
    {
        using var f = new Fixture(VfioUapi.VFIO_TYPE1_IOMMU);
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Map(0x4000, Iova + 0x4000, 0x4000).ShouldBe(0);
        f.Unmap(Iova, 0x1000, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0x4000UL, "v1 removes whole mappings, more than asked");
        f.Unmap(Iova - 0x1000, 0x2000, out unmapped).ShouldBe(0);
        unmapped.ShouldBe(0UL, "nothing starts in the range");
        f.Unmap(Iova + 0x3000, 0x2000, out unmapped).ShouldBe(0);
        unmapped.ShouldBe(0x4000UL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_All_RemovesEverything_AndNeedsZeroIovaAndSize()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, 0x40000000, 0x3000).ShouldBe(0);
        f.Unmap(0, 0x1000, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL).ShouldBe(EINVAL);
        f.Unmap(0x1000, 0, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL).ShouldBe(EINVAL);
        f.Unmap(0, 0, out ulong unmapped, VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL).ShouldBe(0);
        unmapped.ShouldBe(0x4000UL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(0);
        f.M.Kernel.LockedVmPages.ShouldBe(0UL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_ThenDeviceDma_IsBlockedAndRecorded()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Unmap(Iova, 0x1000, out _).ShouldBe(0);
        f.Device.DmaWrite(Iova, [7]).ShouldBeFalse();
        f.Buffer.Span[0].ShouldBe((byte)0);
        f.M.Kernel.DmaFaults.ShouldContain(x => x.Iova == Iova && x.Device == LegacyMachine.Dev2);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void UnmapVaddr_InvalidatesButDmaContinues_MapVaddrRestores()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        f.Unmap(Iova, 0x2000, out ulong size, VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR).ShouldBe(0);
        size.ShouldBe(0x2000UL);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
        f.Device.DmaWrite(Iova, [1]).ShouldBeTrue();
        f.Buffer.Span[0].ShouldBe((byte)1);
        // New process address: DMA now lands there.
        f.Map(0x4000, Iova, 0x2000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(0);
        f.Device.DmaWrite(Iova, [2]).ShouldBeTrue();
        f.Buffer.Span[0x4000].ShouldBe((byte)2);
        f.Map(0x4000, Iova, 0x2000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(EINVAL, "no longer invalidated");
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void UnmapVaddr_AMappingAlreadyInvalid_EinvalAndRollsBackThisCall()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0x1000, Iova + 0x1000, 0x1000).ShouldBe(0);
        f.Unmap(Iova + 0x1000, 0x1000, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR).ShouldBe(0);
        f.Unmap(Iova, 0x2000, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR).ShouldBe(EINVAL);
        // The first mapping's invalidation was rolled back: VADDR update on it is EINVAL, on the second it works.
        f.Map(0, Iova, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(EINVAL);
        f.Map(0x1000, Iova + 0x1000, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void MapVaddr_NoMapping_Enoent_SizeMismatch_Einval()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(-(int)Errno.ENOENT);
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        f.Unmap(0, 0, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR | VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL).ShouldBe(0);
        f.Map(0, Iova, 0x1000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(EINVAL);
        f.Map(0, Iova, 0x2000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_GetDirtyBitmapWithoutTracking_Einval()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        ulong[] bits = new ulong[1];
        GCHandle pin = GCHandle.Alloc(bits, GCHandleType.Pinned);
        try
        {
            var request = new UnmapWithBitmap
            {
                unmap = new vfio_iommu_type1_dma_unmap { argsz = 48, flags = VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova = Iova, size = 0x1000 },
                bitmap = new vfio_bitmap { pgsize = 4096, size = 8, data = (ulong)pin.AddrOfPinnedObject() },
            };
            f.M.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref request).ShouldBe(EINVAL);
        }
        finally
        {
            pin.Free();
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void Unmap_GetDirtyBitmap_ReportsEveryPageThenRemoves()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x2000).ShouldBe(0);
        f.Map(0x2000, Iova + 0x3000, 0x1000).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        ulong[] bits = [0xf0];
        GCHandle pin = GCHandle.Alloc(bits, GCHandleType.Pinned);
        try
        {
            var request = new UnmapWithBitmap
            {
                unmap = new vfio_iommu_type1_dma_unmap { argsz = 48, flags = VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova = Iova, size = 0x4000 },
                bitmap = new vfio_bitmap { pgsize = 4096, size = 8, data = (ulong)pin.AddrOfPinnedObject() },
            };
            f.M.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref request).ShouldBe(0);
            request.unmap.size.ShouldBe(0x3000UL);
            // Pages 0-1 and 3 (an IOMMU-backed group without pinned-page scope: all mapped pages dirty); the second
            // mapping's word rewrite keeps the bits below it and clears those above.
            bits[0].ShouldBe(0b1011UL);
            f.M.Type1(f.Container).MappingCount.ShouldBe(0);
            // Bitmap page size other than the minimum: EINVAL.
            f.Map(0, Iova, 0x1000).ShouldBe(0);
            request.unmap.size = 0x1000;
            request.bitmap.pgsize = 0x200000;
            f.M.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref request).ShouldBe(EINVAL);
        }
        finally
        {
            pin.Free();
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Unmap_GetDirtyBitmap_NullData_Efault()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        var request = new UnmapWithBitmap
        {
            unmap = new vfio_iommu_type1_dma_unmap { argsz = 48, flags = VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova = Iova, size = 0x1000 },
            bitmap = new vfio_bitmap { pgsize = 4096, size = 8, data = 0 },
        };
        f.M.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref request).ShouldBe(-(int)Errno.EFAULT);
        f.M.Type1(f.Container).MappingCount.ShouldBe(1, "the mapping whose bits could not be copied stays");
    }

    // ---- DIRTY_PAGES (vfio_iommu_type1_dirty_pages) ----

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_V1Container_Eacces()
    {
        using var f = new Fixture(VfioUapi.VFIO_TYPE1_IOMMU);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(-(int)Errno.EACCES);
        f.M.Kernel.Ioctl(f.Container, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, 0).ShouldBe(-(int)Errno.EACCES, "checked before the argument is read");
    }

    [Theory]
    [InlineData(8u, 0u)]
    [InlineData(8u, 3u)]
    [InlineData(8u, 8u)]
    [InlineData(7u, 1u)]
    [InlineData(8u, VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_BadArgszOrFlags_Einval(uint argsz, uint flags)
    {
        using var f = new Fixture();
        f.Dirty(flags, argsz).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_StartAndStop_AreIdempotent()
    {
        using var f = new Fixture();
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP).ShouldBe(0);
        f.GetDirty(Iova, 0x1000, new ulong[1]).ShouldBe(EINVAL, "tracking stopped");
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_IommuBackedGroup_EveryMappedPageDirty()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x3000).ShouldBe(0);
        f.Map(0x4000, Iova + 0x5000, 0x1000).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        ulong[] bits = new ulong[1];
        f.GetDirty(Iova, 0x8000, bits).ShouldBe(0);
        bits[0].ShouldBe(0b10_0111UL);
        bits[0] = 0;
        f.GetDirty(Iova, 0x8000, bits).ShouldBe(0);
        bits[0].ShouldBe(0b10_0111UL, "re-armed, and still every page");
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_PinnedScope_ReportsDeviceWritesThenReArms()
    {
        using var f = new Fixture();
        f.M.Type1(f.Container).PinnedPageDirtyScope = true;
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Device.DmaWrite(Iova, [1]).ShouldBeTrue();
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.Device.DmaWrite(Iova + 0x2ffe, [1, 2, 3]).ShouldBeTrue();
        f.Device.DmaRead(Iova + 0x1000, new byte[8]).ShouldBeTrue();
        ulong[] bits = new ulong[1];
        f.GetDirty(Iova, 0x4000, bits).ShouldBe(0);
        bits[0].ShouldBe(0b1100UL, "only pages written while tracking, not reads");
        f.GetDirty(Iova, 0x4000, bits).ShouldBe(0);
        bits[0].ShouldBe(0UL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_MappingCreatedWhileTracking_IsTracked()
    {
        using var f = new Fixture();
        f.M.Type1(f.Container).PinnedPageDirtyScope = true;
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.Map(0, Iova + 0x1000, 0x1000).ShouldBe(0);
        f.Device.DmaWrite(Iova + 0x1000, [1]).ShouldBeTrue();
        ulong[] bits = new ulong[1];
        f.GetDirty(Iova, 0x2000, bits).ShouldBe(0);
        bits[0].ShouldBe(0b10UL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_BisectsAMapping_Einval()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x4000).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.GetDirty(Iova + 0x1000, 0x3000, new ulong[1]).ShouldBe(EINVAL);
        f.GetDirty(Iova, 0x2000, new ulong[1]).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_BadPageSizeAlignmentOrBitmapSize_Einval()
    {
        using var f = new Fixture();
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        ulong[] bits = new ulong[2];
        f.GetDirty(Iova, 0x1000, bits, pgsize: 0x200000).ShouldBe(EINVAL);
        f.GetDirty(Iova + 0x800, 0x1000, bits).ShouldBe(EINVAL);
        f.GetDirty(Iova, 0, bits).ShouldBe(EINVAL);
        f.GetDirty(Iova, 0x41000, bits, bitmapBytes: 8).ShouldBe(EINVAL, "65 pages need 16 bytes");
        f.GetDirty(Iova, 0x1000, bits, bitmapBytes: 0).ShouldBe(EINVAL);
        f.GetDirty(Iova, 0x1000, bits, bitmapBytes: 268435456UL + 8).ShouldBe(EINVAL);
        f.GetDirty(0xffff_ffff_ffff_f000, 0x2000, bits).ShouldBe(EINVAL, "wraps");
        f.GetDirty(Iova, 0x41000, bits).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_dirty_pages")]
    public void DirtyPages_GetBitmap_ArgszWithoutRange_Einval()
    {
        using var f = new Fixture();
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ShouldBe(0);
        f.Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, argsz: 47).ShouldBe(EINVAL);
    }

    // ---- attach/detach (vfio_iommu_type1_attach_group) ----

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
    public void Detach_DevicesLoseTranslation_OtherGroupKeepsMappings()
    {
        using var f = new Fixture();
        using SafeFileHandle group3 = f.M.OpenGroup(3);
        f.M.SetContainer(group3, f.Container).ShouldBe(0);
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.M.Device(LegacyMachine.Dev3).DmaWrite(Iova, [4]).ShouldBeTrue();
        f.M.UnsetContainer(f.Group).ShouldBe(0);
        f.Device.Dma.ShouldBeNull();
        f.Device.DmaWrite(Iova, [5]).ShouldBeFalse();
        f.M.Device(LegacyMachine.Dev3).DmaWrite(Iova + 1, [6]).ShouldBeTrue();
        f.Buffer.Span[..2].ToArray().ShouldBe(new byte[] { 4, 6 });
        f.M.Type1(f.Container).MappingCount.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_get_info")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    public void V1Container_SameInfoAndMapRules()
    {
        using var f = new Fixture(VfioUapi.VFIO_TYPE1_IOMMU);
        MemoryMarshal.Read<vfio_iommu_type1_info>(GetInfo(f, 256, out int rc)).iova_pgsizes.ShouldBe(0x40201000UL);
        rc.ShouldBe(0);
        f.Map(0, Iova, 0x1000).ShouldBe(0);
        f.Map(0, Iova, 0x1000).ShouldBe(-(int)Errno.EEXIST);
        f.Map(0, 0xfee00000, 0x1000).ShouldBe(EINVAL);
    }
}
