// SPDX-License-Identifier: MIT
// include/uapi/linux/iommufd.h (Linux 6.12): hardware page tables (HWPT), IOMMU hardware info, dirty tracking
// and nested-translation cache invalidation.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct iommu_hwpt_alloc</c>, the argument of <c>IOMMU_HWPT_ALLOC</c> (48 bytes; the kernel needs 24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_alloc
{
    /// <summary>Input: size of the structure (48).</summary>
    public uint size;

    /// <summary>Input: <c>IOMMU_HWPT_ALLOC_*</c> / <c>IOMMU_HWPT_FAULT_ID_VALID</c>.</summary>
    public uint flags;

    /// <summary>Input: a device bound to this iommufd; selects the IOMMU (the device is not attached).</summary>
    public uint dev_id;

    /// <summary>Input: an IOAS (paging HWPT) or a nest-parent HWPT (nested HWPT).</summary>
    public uint pt_id;

    /// <summary>Output: id of the new HWPT.</summary>
    public uint out_hwpt_id;

    /// <summary>Must be 0.</summary>
    public uint __reserved;

    /// <summary>Input: <c>IOMMU_HWPT_DATA_*</c> type of the data at <see cref="data_uptr"/>.</summary>
    public uint data_type;

    /// <summary>Input: length of the data at <see cref="data_uptr"/> (0 with <c>IOMMU_HWPT_DATA_NONE</c>).</summary>
    public uint data_len;

    /// <summary>Input: user pointer to driver-specific data, e.g. <see cref="iommu_hwpt_vtd_s1"/>.</summary>
    public ulong data_uptr;

    /// <summary>Input: fault queue object id, used with <c>IOMMU_HWPT_FAULT_ID_VALID</c>.</summary>
    public uint fault_id;

    /// <summary>Reserved; not checked by 6.12.</summary>
    public uint __reserved2;
}

/// <summary><c>struct iommu_hwpt_vtd_s1</c>: data of <c>IOMMU_HWPT_DATA_VTD_S1</c>, an Intel VT-d stage-1 page table owned by the user.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_vtd_s1
{
    /// <summary>Input: <c>IOMMU_VTD_S1_*</c>.</summary>
    public ulong flags;

    /// <summary>Input: guest physical address of the stage-1 page table root.</summary>
    public ulong pgtbl_addr;

    /// <summary>Input: input address width of the stage-1 table.</summary>
    public uint addr_width;

    /// <summary>Must be 0.</summary>
    public uint __reserved;
}

/// <summary><c>struct iommu_hw_info_vtd</c>: data of <c>IOMMU_HW_INFO_TYPE_INTEL_VTD</c> returned by <c>IOMMU_GET_HW_INFO</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hw_info_vtd
{
    /// <summary>Output: <c>IOMMU_HW_INFO_VTD_*</c>.</summary>
    public uint flags;

    /// <summary>Reserved.</summary>
    public uint __reserved;

    /// <summary>Output: the VT-d capability register.</summary>
    public ulong cap_reg;

    /// <summary>Output: the VT-d extended capability register.</summary>
    public ulong ecap_reg;
}

/// <summary><c>struct iommu_hw_info</c>, the argument of <c>IOMMU_GET_HW_INFO</c> (40 bytes; the kernel needs 32).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct iommu_hw_info
{
    /// <summary>Input: size of the structure (40).</summary>
    public uint size;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: a device bound to this iommufd.</summary>
    public uint dev_id;

    /// <summary>In/out: length of the buffer at <see cref="data_uptr"/>; the kernel writes the length of its data.</summary>
    public uint data_len;

    /// <summary>Input: user pointer to the buffer for the driver data (e.g. <see cref="iommu_hw_info_vtd"/>).</summary>
    public ulong data_uptr;

    /// <summary>Output: <c>IOMMU_HW_INFO_TYPE_*</c> of the data.</summary>
    public uint out_data_type;

    /// <summary>Output: PASID width in bits (0 = no PASID support).</summary>
    public byte out_max_pasid_log2;

    /// <summary>Must be 0.</summary>
    public fixed byte __reserved[3];

    /// <summary>Output: <c>IOMMU_HW_CAP_*</c>.</summary>
    public ulong out_capabilities;
}

/// <summary><c>struct iommu_hwpt_set_dirty_tracking</c>, the argument of <c>IOMMU_HWPT_SET_DIRTY_TRACKING</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_set_dirty_tracking
{
    /// <summary>Input: size of the structure (16).</summary>
    public uint size;

    /// <summary>Input: <c>IOMMU_HWPT_DIRTY_TRACKING_ENABLE</c> or 0 (disable).</summary>
    public uint flags;

    /// <summary>Input: a paging HWPT allocated with <c>IOMMU_HWPT_ALLOC_DIRTY_TRACKING</c>.</summary>
    public uint hwpt_id;

    /// <summary>Must be 0 (not checked by 6.12).</summary>
    public uint __reserved;
}

/// <summary><c>struct iommu_hwpt_get_dirty_bitmap</c>, the argument of <c>IOMMU_HWPT_GET_DIRTY_BITMAP</c> (48 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_get_dirty_bitmap
{
    /// <summary>Input: size of the structure (48).</summary>
    public uint size;

    /// <summary>Input: the paging HWPT to read.</summary>
    public uint hwpt_id;

    /// <summary>Input: <c>IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR</c> or 0.</summary>
    public uint flags;

    /// <summary>Must be 0.</summary>
    public uint __reserved;

    /// <summary>Input: first IOVA of the range.</summary>
    public ulong iova;

    /// <summary>Input: length of the range.</summary>
    public ulong length;

    /// <summary>Input: bytes covered by one bitmap bit.</summary>
    public ulong page_size;

    /// <summary>Input: user pointer to the <c>__u64</c> bitmap the kernel sets bits in.</summary>
    public ulong data;
}

/// <summary><c>struct iommu_hwpt_vtd_s1_invalidate</c>: one entry of <c>IOMMU_HWPT_INVALIDATE_DATA_VTD_S1</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_vtd_s1_invalidate
{
    /// <summary>Input: 4 KiB-aligned first address (0 with <see cref="npages"/> = 2^64−1 means everything).</summary>
    public ulong addr;

    /// <summary>Input: number of 4 KiB pages.</summary>
    public ulong npages;

    /// <summary>Input: <c>IOMMU_VTD_INV_FLAGS_*</c>.</summary>
    public uint flags;

    /// <summary>Must be 0.</summary>
    public uint __reserved;
}

/// <summary><c>struct iommu_hwpt_invalidate</c>, the argument of <c>IOMMU_HWPT_INVALIDATE</c> (32 bytes): flush caches of a nested HWPT.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_invalidate
{
    /// <summary>Input: size of the structure (32).</summary>
    public uint size;

    /// <summary>Input: the nested HWPT.</summary>
    public uint hwpt_id;

    /// <summary>Input: user pointer to <see cref="entry_num"/> entries of <see cref="entry_len"/> bytes.</summary>
    public ulong data_uptr;

    /// <summary>Input: <c>IOMMU_HWPT_INVALIDATE_DATA_*</c>.</summary>
    public uint data_type;

    /// <summary>Input: size of one entry.</summary>
    public uint entry_len;

    /// <summary>In/out: number of entries; the kernel writes how many it handled (also on failure).</summary>
    public uint entry_num;

    /// <summary>Must be 0.</summary>
    public uint __reserved;
}

internal static partial class IommuUapi
{
    /// <summary><c>iommu_hwpt_alloc.flags</c>: the paging HWPT may be the parent of nested HWPTs.</summary>
    public const uint IOMMU_HWPT_ALLOC_NEST_PARENT = 1u << 0;

    /// <summary><c>iommu_hwpt_alloc.flags</c>: the paging HWPT supports dirty tracking.</summary>
    public const uint IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1u << 1;

    /// <summary><c>iommu_hwpt_alloc.flags</c>: <c>fault_id</c> is valid (nested HWPTs only in 6.12).</summary>
    public const uint IOMMU_HWPT_FAULT_ID_VALID = 1u << 2;

    /// <summary><c>iommu_hwpt_alloc.data_type</c>: no data (a kernel-managed paging HWPT).</summary>
    public const uint IOMMU_HWPT_DATA_NONE = 0;

    /// <summary><c>iommu_hwpt_alloc.data_type</c>: <see cref="iommu_hwpt_vtd_s1"/>.</summary>
    public const uint IOMMU_HWPT_DATA_VTD_S1 = 1;

    /// <summary><c>iommu_hwpt_vtd_s1.flags</c>: supervisor requests enabled.</summary>
    public const ulong IOMMU_VTD_S1_SRE = 1ul << 0;

    /// <summary><c>iommu_hwpt_vtd_s1.flags</c>: extended access flag enabled.</summary>
    public const ulong IOMMU_VTD_S1_EAFE = 1ul << 1;

    /// <summary><c>iommu_hwpt_vtd_s1.flags</c>: write protect enabled.</summary>
    public const ulong IOMMU_VTD_S1_WPE = 1ul << 2;

    /// <summary><c>iommu_hw_info_vtd.flags</c>: the IOMMU has erratum 772415 (SPR17).</summary>
    public const uint IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1u << 0;

    /// <summary><c>iommu_hw_info.out_data_type</c>: no driver data.</summary>
    public const uint IOMMU_HW_INFO_TYPE_NONE = 0;

    /// <summary><c>iommu_hw_info.out_data_type</c>: <see cref="iommu_hw_info_vtd"/>.</summary>
    public const uint IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;

    /// <summary><c>iommu_hw_info.out_capabilities</c>: the IOMMU can track dirty pages.</summary>
    public const ulong IOMMU_HW_CAP_DIRTY_TRACKING = 1ul << 0;

    /// <summary><c>iommu_hw_info.out_capabilities</c>: PCI PASID Execute permission supported.</summary>
    public const ulong IOMMU_HW_CAP_PCI_PASID_EXEC = 1ul << 1;

    /// <summary><c>iommu_hw_info.out_capabilities</c>: PCI PASID Privileged mode supported.</summary>
    public const ulong IOMMU_HW_CAP_PCI_PASID_PRIV = 1ul << 2;

    /// <summary><c>iommu_hwpt_set_dirty_tracking.flags</c>: enable dirty tracking (0 disables).</summary>
    public const uint IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

    /// <summary><c>iommu_hwpt_get_dirty_bitmap.flags</c>: read the dirty bits without clearing them.</summary>
    public const uint IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

    /// <summary><c>iommu_hwpt_invalidate.data_type</c>: entries are <see cref="iommu_hwpt_vtd_s1_invalidate"/>.</summary>
    public const uint IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;

    /// <summary><c>iommu_hwpt_vtd_s1_invalidate.flags</c>: only leaf entries changed.</summary>
    public const uint IOMMU_VTD_INV_FLAGS_LEAF = 1u << 0;

    /// <summary><c>IOMMU_HWPT_ALLOC</c> (iommufd; <c>struct iommu_hwpt_alloc *</c>, in/out).</summary>
    public static readonly uint IOMMU_HWPT_ALLOC = IoctlEncoding.Io(IOMMUFD_CMD_HWPT_ALLOC);

    /// <summary><c>IOMMU_GET_HW_INFO</c> (iommufd; <c>struct iommu_hw_info *</c>, in/out).</summary>
    public static readonly uint IOMMU_GET_HW_INFO = IoctlEncoding.Io(IOMMUFD_CMD_GET_HW_INFO);

    /// <summary><c>IOMMU_HWPT_SET_DIRTY_TRACKING</c> (iommufd; <c>struct iommu_hwpt_set_dirty_tracking *</c>, in).</summary>
    public static readonly uint IOMMU_HWPT_SET_DIRTY_TRACKING = IoctlEncoding.Io(IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);

    /// <summary><c>IOMMU_HWPT_GET_DIRTY_BITMAP</c> (iommufd; <c>struct iommu_hwpt_get_dirty_bitmap *</c>, in).</summary>
    public static readonly uint IOMMU_HWPT_GET_DIRTY_BITMAP = IoctlEncoding.Io(IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);

    /// <summary><c>IOMMU_HWPT_INVALIDATE</c> (iommufd; <c>struct iommu_hwpt_invalidate *</c>, in/out).</summary>
    public static readonly uint IOMMU_HWPT_INVALIDATE = IoctlEncoding.Io(IOMMUFD_CMD_HWPT_INVALIDATE);
}
