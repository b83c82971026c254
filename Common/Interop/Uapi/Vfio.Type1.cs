// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): the Type1 IOMMU backend of the container (also served by iommufd's
// VFIO compatibility layer).
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_iommu_type1_info</c>, the argument of <c>VFIO_IOMMU_GET_INFO</c> (24 bytes; the kernel needs 16).</summary>
/// <remarks>The capability chain (<c>VFIO_IOMMU_TYPE1_INFO_CAP_*</c>) follows the structure; see <see cref="cap_offset"/>.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_info
{
    /// <summary>In/out: size of the caller's buffer; the kernel raises it when the capabilities do not fit.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_IOMMU_INFO_PGSIZES</c> | <c>VFIO_IOMMU_INFO_CAPS</c>.</summary>
    public uint flags;

    /// <summary>Output: bitmap of supported IOMMU page sizes; the lowest set bit is the mapping granule.</summary>
    public ulong iova_pgsizes;

    /// <summary>Output: offset of the first capability from the start of the structure, or 0.</summary>
    public uint cap_offset;

    /// <summary>Padding.</summary>
    public uint pad;
}

/// <summary><c>struct vfio_iova_range</c>: one element of <c>vfio_iommu_type1_info_cap_iova_range.iova_ranges[]</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iova_range
{
    /// <summary>First usable IOVA.</summary>
    public ulong start;

    /// <summary>Last usable IOVA (inclusive).</summary>
    public ulong end;
}

/// <summary>Type1 info capability <c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c> (<c>struct vfio_iommu_type1_info_cap_iova_range</c>).</summary>
/// <remarks>
/// The flexible array <c>iova_ranges[]</c> of <see cref="nr_iovas"/> × <see cref="vfio_iova_range"/> follows at
/// <see cref="iova_ranges_offset"/>. In C the array gives the struct 8-byte alignment; this declaration is 4-byte
/// aligned, which only matters if it is embedded in another struct.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_info_cap_iova_range
{
    /// <summary>Offset of the flexible array <c>iova_ranges[]</c> from the start of the capability.</summary>
    public const int iova_ranges_offset = 16;

    /// <summary>Capability header; <c>id</c> is <c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: number of entries in <c>iova_ranges[]</c>.</summary>
    public uint nr_iovas;

    /// <summary>Reserved.</summary>
    public uint reserved;
}

/// <summary>Type1 info capability <c>VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION</c> (<c>struct vfio_iommu_type1_info_cap_migration</c>): dirty page tracking support.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_info_cap_migration
{
    /// <summary>Capability header; <c>id</c> is <c>VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: reserved, 0.</summary>
    public uint flags;

    /// <summary>Output: page sizes supported for dirty bitmaps.</summary>
    public ulong pgsize_bitmap;

    /// <summary>Output: largest dirty bitmap, in bytes, one request may use.</summary>
    public ulong max_dirty_bitmap_size;
}

/// <summary>Type1 info capability <c>VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL</c> (<c>struct vfio_iommu_type1_info_dma_avail</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_info_dma_avail
{
    /// <summary>Capability header; <c>id</c> is <c>VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: how many more DMA mappings may be created.</summary>
    public uint avail;
}

/// <summary><c>struct vfio_iommu_type1_dma_map</c>, the argument of <c>VFIO_IOMMU_MAP_DMA</c> (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_dma_map
{
    /// <summary>Input: size of the structure (32).</summary>
    public uint argsz;

    /// <summary>Input: <c>VFIO_DMA_MAP_FLAG_READ</c>/<c>WRITE</c>, or <c>VFIO_DMA_MAP_FLAG_VADDR</c> alone.</summary>
    public uint flags;

    /// <summary>Input: process virtual address of the memory to map.</summary>
    public ulong vaddr;

    /// <summary>Input: IO virtual address the device will use.</summary>
    public ulong iova;

    /// <summary>Input: length in bytes (a multiple of the minimum page size).</summary>
    public ulong size;
}

/// <summary><c>struct vfio_bitmap</c>: a user dirty bitmap, used by <c>VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP</c> and <c>VFIO_IOMMU_DIRTY_PAGES</c>.</summary>
/// <remarks><see cref="data"/> is a real pointer in C (<c>__u64 *</c>); it is declared as a 64-bit integer.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_bitmap
{
    /// <summary>Input: bytes covered by one bit (the minimum IOMMU page size).</summary>
    public ulong pgsize;

    /// <summary>Input: size of the bitmap buffer in bytes.</summary>
    public ulong size;

    /// <summary>Input: user pointer to the bitmap (<c>__u64 *</c>), one bit per page.</summary>
    public ulong data;
}

/// <summary><c>struct vfio_iommu_type1_dma_unmap</c>, the argument of <c>VFIO_IOMMU_UNMAP_DMA</c> (24 bytes + optional bitmap).</summary>
/// <remarks>
/// With <c>VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP</c> a <see cref="vfio_bitmap"/> follows as the flexible array
/// <c>data[]</c> at <see cref="data_offset"/> and <see cref="argsz"/> covers it.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_dma_unmap
{
    /// <summary>Offset of the flexible array <c>data[]</c> from the start of the structure.</summary>
    public const int data_offset = 24;

    /// <summary>Input: size of the structure (plus the bitmap, if any).</summary>
    public uint argsz;

    /// <summary>Input: <c>VFIO_DMA_UNMAP_FLAG_*</c>.</summary>
    public uint flags;

    /// <summary>Input: first IOVA to unmap (0 with <c>VFIO_DMA_UNMAP_FLAG_ALL</c>).</summary>
    public ulong iova;

    /// <summary>In/out: bytes to unmap (0 with ALL); the kernel writes the bytes actually unmapped.</summary>
    public ulong size;
}

/// <summary><c>struct vfio_iommu_type1_dirty_bitmap</c>, the argument of <c>VFIO_IOMMU_DIRTY_PAGES</c> (8 bytes + data).</summary>
/// <remarks>
/// With <c>VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP</c> a <see cref="vfio_iommu_type1_dirty_bitmap_get"/> follows as
/// the flexible array <c>data[]</c> at <see cref="data_offset"/>.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_dirty_bitmap
{
    /// <summary>Offset of the flexible array <c>data[]</c> from the start of the structure.</summary>
    public const int data_offset = 8;

    /// <summary>Input: size of the structure plus data.</summary>
    public uint argsz;

    /// <summary>Input: exactly one <c>VFIO_IOMMU_DIRTY_PAGES_FLAG_*</c>.</summary>
    public uint flags;
}

/// <summary><c>struct vfio_iommu_type1_dirty_bitmap_get</c>: the data of <c>VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_type1_dirty_bitmap_get
{
    /// <summary>Input: first IOVA of the range.</summary>
    public ulong iova;

    /// <summary>Input: length of the range.</summary>
    public ulong size;

    /// <summary>Input: the bitmap the kernel fills.</summary>
    public vfio_bitmap bitmap;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_iommu_type1_info.flags</c>: <c>iova_pgsizes</c> is valid.</summary>
    public const uint VFIO_IOMMU_INFO_PGSIZES = 1u << 0;

    /// <summary><c>vfio_iommu_type1_info.flags</c>: a capability chain is reported.</summary>
    public const uint VFIO_IOMMU_INFO_CAPS = 1u << 1;

    /// <summary>Type1 info capability id: <see cref="vfio_iommu_type1_info_cap_iova_range"/>.</summary>
    public const ushort VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;

    /// <summary>Type1 info capability id: <see cref="vfio_iommu_type1_info_cap_migration"/>.</summary>
    public const ushort VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;

    /// <summary>Type1 info capability id: <see cref="vfio_iommu_type1_info_dma_avail"/>.</summary>
    public const ushort VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

    /// <summary><c>vfio_iommu_type1_dma_map.flags</c>: the device may read the memory.</summary>
    public const uint VFIO_DMA_MAP_FLAG_READ = 1u << 0;

    /// <summary><c>vfio_iommu_type1_dma_map.flags</c>: the device may write the memory.</summary>
    public const uint VFIO_DMA_MAP_FLAG_WRITE = 1u << 1;

    /// <summary><c>vfio_iommu_type1_dma_map.flags</c>: give an invalidated mapping its new process address (needs <c>VFIO_UPDATE_VADDR</c>).</summary>
    public const uint VFIO_DMA_MAP_FLAG_VADDR = 1u << 2;

    /// <summary><c>vfio_iommu_type1_dma_unmap.flags</c>: also return the dirty bitmap of the unmapped range (v2, tracking on).</summary>
    public const uint VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1u << 0;

    /// <summary><c>vfio_iommu_type1_dma_unmap.flags</c>: unmap everything (needs <c>VFIO_UNMAP_ALL</c>; iova and size 0).</summary>
    public const uint VFIO_DMA_UNMAP_FLAG_ALL = 1u << 1;

    /// <summary><c>vfio_iommu_type1_dma_unmap.flags</c>: keep the mappings but invalidate their process addresses (needs <c>VFIO_UPDATE_VADDR</c>).</summary>
    public const uint VFIO_DMA_UNMAP_FLAG_VADDR = 1u << 2;

    /// <summary><c>vfio_iommu_type1_dirty_bitmap.flags</c>: start dirty page tracking.</summary>
    public const uint VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1u << 0;

    /// <summary><c>vfio_iommu_type1_dirty_bitmap.flags</c>: stop dirty page tracking.</summary>
    public const uint VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1u << 1;

    /// <summary><c>vfio_iommu_type1_dirty_bitmap.flags</c>: read and re-arm the dirty bitmap of a range.</summary>
    public const uint VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1u << 2;

    /// <summary><c>VFIO_IOMMU_GET_INFO</c> (Type1 container or iommufd fd; <c>struct vfio_iommu_type1_info *</c>, in/out). Same number as <c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c> and <c>VFIO_IOMMU_SPAPR_TCE_GET_INFO</c>.</summary>
    public static readonly uint VFIO_IOMMU_GET_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 12);

    /// <summary><c>VFIO_IOMMU_MAP_DMA</c> (container or iommufd fd; <c>struct vfio_iommu_type1_dma_map *</c>, in). Same number as <c>VFIO_DEVICE_PCI_HOT_RESET</c>.</summary>
    public static readonly uint VFIO_IOMMU_MAP_DMA = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 13);

    /// <summary><c>VFIO_IOMMU_UNMAP_DMA</c> (container or iommufd fd; <c>struct vfio_iommu_type1_dma_unmap *</c>, in/out). Same number as <c>VFIO_DEVICE_QUERY_GFX_PLANE</c>.</summary>
    public static readonly uint VFIO_IOMMU_UNMAP_DMA = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 14);

    /// <summary><c>VFIO_IOMMU_DIRTY_PAGES</c> (Type1 v2 container; <c>struct vfio_iommu_type1_dirty_bitmap *</c> + data, in). Same number as <c>VFIO_DEVICE_FEATURE</c>.</summary>
    public static readonly uint VFIO_IOMMU_DIRTY_PAGES = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 17);
}
