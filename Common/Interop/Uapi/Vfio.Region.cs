// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): region info and its capability chain.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_region_info</c>, the argument of <c>VFIO_DEVICE_GET_REGION_INFO</c> (32 bytes).</summary>
/// <remarks>A capability chain may follow the structure; see <see cref="cap_offset"/> and <c>VFIO_REGION_INFO_FLAG_CAPS</c>.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_region_info
{
    /// <summary>In/out: size of the caller's buffer; the kernel raises it when the capabilities do not fit.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_REGION_INFO_FLAG_*</c>.</summary>
    public uint flags;

    /// <summary>Input: region index (for vfio-pci <c>VFIO_PCI_*_REGION_INDEX</c>).</summary>
    public uint index;

    /// <summary>Output: offset of the first capability from the start of the structure, or 0.</summary>
    public uint cap_offset;

    /// <summary>Output: region size in bytes (0 for an unimplemented region).</summary>
    public ulong size;

    /// <summary>Output: device fd offset of the region, for pread/pwrite/mmap.</summary>
    public ulong offset;
}

/// <summary><c>struct vfio_region_sparse_mmap_area</c>: one element of <c>vfio_region_info_cap_sparse_mmap.areas[]</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_region_sparse_mmap_area
{
    /// <summary>Offset of the mmap-able area within the region.</summary>
    public ulong offset;

    /// <summary>Size of the mmap-able area.</summary>
    public ulong size;
}

/// <summary>Region capability <c>VFIO_REGION_INFO_CAP_SPARSE_MMAP</c> (<c>struct vfio_region_info_cap_sparse_mmap</c>): only the listed areas may be mmapped.</summary>
/// <remarks>
/// The flexible array <c>areas[]</c> of <see cref="nr_areas"/> × <see cref="vfio_region_sparse_mmap_area"/> follows
/// the fixed part at <see cref="areas_offset"/>; it is not declared as a field. In C the array gives the struct
/// 8-byte alignment; this declaration is 4-byte aligned, which only matters if it is embedded in another struct.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_region_info_cap_sparse_mmap
{
    /// <summary>Offset of the flexible array <c>areas[]</c> from the start of the capability.</summary>
    public const int areas_offset = 16;

    /// <summary>Capability header; <c>id</c> is <c>VFIO_REGION_INFO_CAP_SPARSE_MMAP</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: number of entries in <c>areas[]</c>.</summary>
    public uint nr_areas;

    /// <summary>Reserved.</summary>
    public uint reserved;
}

/// <summary>Region capability <c>VFIO_REGION_INFO_CAP_TYPE</c> (<c>struct vfio_region_info_cap_type</c>): identifies a device-specific region.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_region_info_cap_type
{
    /// <summary>Capability header; <c>id</c> is <c>VFIO_REGION_INFO_CAP_TYPE</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: <c>VFIO_REGION_TYPE_*</c>, or <c>VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor id</c>.</summary>
    public uint type;

    /// <summary>Output: <c>VFIO_REGION_SUBTYPE_*</c>, meaningful per <see cref="type"/>.</summary>
    public uint subtype;
}

/// <summary>
/// <c>struct vfio_region_gfx_edid</c>: layout at the start of a <c>VFIO_REGION_TYPE_GFX</c> /
/// <c>VFIO_REGION_SUBTYPE_GFX_EDID</c> region (virtual display EDID of an mdev GPU).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_region_gfx_edid
{
    /// <summary>Read-only: offset of the EDID blob within the region.</summary>
    public uint edid_offset;

    /// <summary>Read-only: maximum EDID blob size.</summary>
    public uint edid_max_size;

    /// <summary>Read-write: size of the EDID blob written by the user.</summary>
    public uint edid_size;

    /// <summary>Read-only: maximum horizontal resolution (0 = no limit).</summary>
    public uint max_xres;

    /// <summary>Read-only: maximum vertical resolution (0 = no limit).</summary>
    public uint max_yres;

    /// <summary>Read-write: <c>VFIO_DEVICE_GFX_LINK_STATE_UP</c> or <c>_DOWN</c>.</summary>
    public uint link_state;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_region_info.flags</c>: the region supports read (pread).</summary>
    public const uint VFIO_REGION_INFO_FLAG_READ = 1u << 0;

    /// <summary><c>vfio_region_info.flags</c>: the region supports write (pwrite).</summary>
    public const uint VFIO_REGION_INFO_FLAG_WRITE = 1u << 1;

    /// <summary><c>vfio_region_info.flags</c>: the region (or its sparse areas) can be mmapped.</summary>
    public const uint VFIO_REGION_INFO_FLAG_MMAP = 1u << 2;

    /// <summary><c>vfio_region_info.flags</c>: a capability chain is reported (<c>cap_offset</c>).</summary>
    public const uint VFIO_REGION_INFO_FLAG_CAPS = 1u << 3;

    /// <summary>Region capability id: <see cref="vfio_region_info_cap_sparse_mmap"/>.</summary>
    public const ushort VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;

    /// <summary>Region capability id: <see cref="vfio_region_info_cap_type"/>.</summary>
    public const ushort VFIO_REGION_INFO_CAP_TYPE = 2;

    /// <summary>Region capability id: the MSI-X table in this BAR may be mmapped (header only).</summary>
    public const ushort VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;

    /// <summary>Region capability id: NVLink2 SSA target (deprecated, never emitted by 6.12).</summary>
    public const ushort VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;

    /// <summary>Region capability id: NVLink2 link speed (deprecated, never emitted by 6.12).</summary>
    public const ushort VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

    /// <summary><c>vfio_region_info_cap_type.type</c> bit: a PCI vendor-specific type; the low 16 bits hold the vendor id.</summary>
    public const uint VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 1u << 31;

    /// <summary>Mask of the vendor id in a <c>VFIO_REGION_TYPE_PCI_VENDOR_TYPE</c> type.</summary>
    public const uint VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xFFFF;

    /// <summary>Region type: graphics (mdev display).</summary>
    public const uint VFIO_REGION_TYPE_GFX = 1;

    /// <summary>Region type: s390 channel I/O.</summary>
    public const uint VFIO_REGION_TYPE_CCW = 2;

    /// <summary>Region type: the removed v1 migration region.</summary>
    public const uint VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;

    /// <summary>Subtype of vendor 0x8086: IGD OpRegion.</summary>
    public const uint VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;

    /// <summary>Subtype of vendor 0x8086: IGD host bridge config space.</summary>
    public const uint VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;

    /// <summary>Subtype of vendor 0x8086: IGD LPC bridge config space.</summary>
    public const uint VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;

    /// <summary>Subtype of vendor 0x10de: NVLink2 GPU RAM (deprecated).</summary>
    public const uint VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1;

    /// <summary>Subtype of vendor 0x1014: NVLink2 ATSD (deprecated).</summary>
    public const uint VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1;

    /// <summary>Subtype of <c>VFIO_REGION_TYPE_GFX</c>: EDID region (<see cref="vfio_region_gfx_edid"/>).</summary>
    public const uint VFIO_REGION_SUBTYPE_GFX_EDID = 1;

    /// <summary><c>vfio_region_gfx_edid.link_state</c>: link up.</summary>
    public const uint VFIO_DEVICE_GFX_LINK_STATE_UP = 1;

    /// <summary><c>vfio_region_gfx_edid.link_state</c>: link down.</summary>
    public const uint VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2;

    /// <summary>Subtype of <c>VFIO_REGION_TYPE_CCW</c>: asynchronous command region.</summary>
    public const uint VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1;

    /// <summary>Subtype of <c>VFIO_REGION_TYPE_CCW</c>: subchannel information block.</summary>
    public const uint VFIO_REGION_SUBTYPE_CCW_SCHIB = 2;

    /// <summary>Subtype of <c>VFIO_REGION_TYPE_CCW</c>: channel report words.</summary>
    public const uint VFIO_REGION_SUBTYPE_CCW_CRW = 3;

    /// <summary>Subtype of <c>VFIO_REGION_TYPE_MIGRATION_DEPRECATED</c>.</summary>
    public const uint VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1;

    /// <summary><c>VFIO_DEVICE_GET_REGION_INFO</c> (device fd; <c>struct vfio_region_info *</c>, in/out).</summary>
    public static readonly uint VFIO_DEVICE_GET_REGION_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 8);
}
