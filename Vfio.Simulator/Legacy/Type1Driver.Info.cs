// SPDX-License-Identifier: MIT
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class Type1Driver
{
    /// <summary>The largest dirty bitmap one request may use: bytes for 2^31−1 pages, 64-bit aligned.</summary>
    internal const ulong MaxDirtyBitmapSize = 268435456;

    // vfio_iommu_type1_info's size; the kernel needs its first 16 bytes (up to pgsize_bitmap, its minsz).
    private static int InfoSize => Unsafe.SizeOf<vfio_iommu_type1_info>();
    private const int InfoMinSize = 16;
    private static int MigrationCapSize => Unsafe.SizeOf<vfio_iommu_type1_info_cap_migration>();
    // 12 bytes of struct; vfio_info_cap_add keeps each capability 8-byte aligned, so it takes 16 in the chain.
    private static int DmaAvailCapSize => (Unsafe.SizeOf<vfio_iommu_type1_info_dma_avail>() + 7) & ~7;
    private static int IovaRangeCapHeaderSize => Unsafe.SizeOf<vfio_iommu_type1_info_cap_iova_range>();
    private static int IovaRangeSize => Unsafe.SizeOf<vfio_iova_range>();

    /// <summary>The minimum IOMMU page size (lowest bit of <c>pgsize_bitmap</c>).</summary>
    private ulong MinPageSize => 1UL << BitOperations.TrailingZeroCount(_pageSizes);

    /// <summary>VFIO_IOMMU_GET_INFO (vfio_iommu_type1_get_info, vfio_info_cap_add): flags, page sizes and the capability chain MIGRATION, DMA_AVAIL,
    /// IOVA_RANGE; when <c>argsz</c> is too small for the chain, success with CAPS set and <c>argsz</c> = the size needed.</summary>
    private int GetInfo(nint argument)
    {
        int rc = UserMemory.Read(argument, InfoMinSize, out vfio_iommu_type1_info info);
        if (rc < 0)
        {
            return rc;
        }
        if (info.argsz < InfoMinSize)
        {
            return -(int)Errno.EINVAL;
        }
        int copyBack = (int)Math.Min(info.argsz, (uint)InfoSize);
        Span<byte> caps = stackalloc byte[MigrationCapSize + DmaAvailCapSize + IovaRangeCapHeaderSize + (IovaRangeSize * 4)];
        int capsSize;
        lock (_sync)
        {
            info.flags = VfioUapi.VFIO_IOMMU_INFO_PGSIZES;
            info.iova_pgsizes = _pageSizes;
            capsSize = BuildCaps(caps);
        }
        info.flags |= VfioUapi.VFIO_IOMMU_INFO_CAPS;
        if (info.argsz < InfoSize + capsSize)
        {
            info.argsz = (uint)(InfoSize + capsSize);
        }
        else
        {
            rc = UserMemory.CopyTo(argument + InfoSize, caps[..capsSize]);
            if (rc < 0)
            {
                return rc;
            }
            info.cap_offset = (uint)InfoSize;
        }
        return UserMemory.Write(argument, copyBack, info);
    }

    /// <summary>Writes the chain as it lies after the 24-byte info struct (offsets from the struct's start) and returns its size.</summary>
    private int BuildCaps(Span<byte> buffer)
    {
        int offset = 0;
        bool hasRanges = _iovaRanges.Length > 0;

        var migration = new vfio_iommu_type1_info_cap_migration
        {
            header = new vfio_info_cap_header { id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version = 1, next = (uint)(InfoSize + MigrationCapSize) },
            flags = 0,
            pgsize_bitmap = MinPageSize,
            max_dirty_bitmap_size = MaxDirtyBitmapSize,
        };
        MemoryMarshal.Write(buffer[offset..], in migration);
        offset += MigrationCapSize;

        var avail = new vfio_iommu_type1_info_dma_avail
        {
            header = new vfio_info_cap_header
            {
                id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
                version = 1,
                next = hasRanges ? (uint)(InfoSize + offset + DmaAvailCapSize) : 0,
            },
            avail = (uint)_dmaAvail,
        };
        buffer.Slice(offset, DmaAvailCapSize).Clear();
        MemoryMarshal.Write(buffer[offset..], in avail);
        offset += DmaAvailCapSize;

        if (hasRanges)
        {
            var ranges = new vfio_iommu_type1_info_cap_iova_range
            {
                header = new vfio_info_cap_header { id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version = 1, next = 0 },
                nr_iovas = (uint)_iovaRanges.Length,
                reserved = 0,
            };
            MemoryMarshal.Write(buffer[offset..], in ranges);
            offset += IovaRangeCapHeaderSize;
            foreach (vfio_iova_range range in _iovaRanges)
            {
                MemoryMarshal.Write(buffer[offset..], in range);
                offset += IovaRangeSize;
            }
        }
        return offset;
    }
}
