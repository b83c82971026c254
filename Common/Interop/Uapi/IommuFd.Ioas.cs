// SPDX-License-Identifier: MIT
// include/uapi/linux/iommufd.h (Linux 6.12): IO address spaces (IOAS) and the VFIO compatibility IOAS.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct iommu_ioas_alloc</c>, the argument of <c>IOMMU_IOAS_ALLOC</c> (12 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_alloc
{
    /// <summary>Input: size of the structure (12).</summary>
    public uint size;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Output: id of the new IOAS.</summary>
    public uint out_ioas_id;
}

/// <summary><c>struct iommu_iova_range</c>: an inclusive IOVA interval, element of the arrays of <c>IOMMU_IOAS_IOVA_RANGES</c> and <c>IOMMU_IOAS_ALLOW_IOVAS</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_iova_range
{
    /// <summary>First IOVA.</summary>
    public ulong start;

    /// <summary>Last IOVA (inclusive).</summary>
    public ulong last;
}

/// <summary><c>struct iommu_ioas_iova_ranges</c>, the argument of <c>IOMMU_IOAS_IOVA_RANGES</c> (32 bytes).</summary>
/// <remarks>Fails with <c>EMSGSIZE</c> after writing the required <see cref="num_iovas"/> when the array is too short.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_iova_ranges
{
    /// <summary>Input: size of the structure (32).</summary>
    public uint size;

    /// <summary>Input: IOAS to query.</summary>
    public uint ioas_id;

    /// <summary>In/out: capacity of <see cref="allowed_iovas"/>; the kernel writes the total number of ranges.</summary>
    public uint num_iovas;

    /// <summary>Must be 0.</summary>
    public uint __reserved;

    /// <summary>Input: user pointer to an array of <see cref="iommu_iova_range"/> the kernel fills.</summary>
    public ulong allowed_iovas;

    /// <summary>Output: required alignment of IOVA and length for MAP/COPY (1 to PAGE_SIZE).</summary>
    public ulong out_iova_alignment;
}

/// <summary><c>struct iommu_ioas_allow_iovas</c>, the argument of <c>IOMMU_IOAS_ALLOW_IOVAS</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_allow_iovas
{
    /// <summary>Input: size of the structure (24).</summary>
    public uint size;

    /// <summary>Input: IOAS to restrict.</summary>
    public uint ioas_id;

    /// <summary>Input: number of ranges at <see cref="allowed_iovas"/> (0 clears the list).</summary>
    public uint num_iovas;

    /// <summary>Must be 0.</summary>
    public uint __reserved;

    /// <summary>Input: user pointer to an array of <see cref="iommu_iova_range"/>; automatic IOVAs are taken only from these.</summary>
    public ulong allowed_iovas;
}

/// <summary><c>struct iommu_ioas_map</c>, the argument of <c>IOMMU_IOAS_MAP</c> (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_map
{
    /// <summary>Input: size of the structure (40).</summary>
    public uint size;

    /// <summary>Input: <c>IOMMU_IOAS_MAP_*</c>.</summary>
    public uint flags;

    /// <summary>Input: IOAS to map into.</summary>
    public uint ioas_id;

    /// <summary>Must be 0.</summary>
    public uint __reserved;

    /// <summary>Input: process virtual address of the memory.</summary>
    public ulong user_va;

    /// <summary>Input: length in bytes.</summary>
    public ulong length;

    /// <summary>In (with <c>IOMMU_IOAS_MAP_FIXED_IOVA</c>) / out: the IOVA of the mapping.</summary>
    public ulong iova;
}

/// <summary><c>struct iommu_ioas_copy</c>, the argument of <c>IOMMU_IOAS_COPY</c> (40 bytes): map pages already mapped in one IOAS into another.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_copy
{
    /// <summary>Input: size of the structure (40).</summary>
    public uint size;

    /// <summary>Input: <c>IOMMU_IOAS_MAP_*</c> for the destination.</summary>
    public uint flags;

    /// <summary>Input: destination IOAS.</summary>
    public uint dst_ioas_id;

    /// <summary>Input: source IOAS.</summary>
    public uint src_ioas_id;

    /// <summary>Input: length in bytes.</summary>
    public ulong length;

    /// <summary>In (with <c>IOMMU_IOAS_MAP_FIXED_IOVA</c>) / out: destination IOVA.</summary>
    public ulong dst_iova;

    /// <summary>Input: source IOVA (must be fully and contiguously mapped).</summary>
    public ulong src_iova;
}

/// <summary><c>struct iommu_ioas_unmap</c>, the argument of <c>IOMMU_IOAS_UNMAP</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_ioas_unmap
{
    /// <summary>Input: size of the structure (24).</summary>
    public uint size;

    /// <summary>Input: IOAS to unmap from.</summary>
    public uint ioas_id;

    /// <summary>Input: first IOVA (0 together with length 2^64−1 unmaps everything).</summary>
    public ulong iova;

    /// <summary>In/out: bytes to unmap; the kernel writes the bytes unmapped.</summary>
    public ulong length;
}

/// <summary><c>struct iommu_vfio_ioas</c>, the argument of <c>IOMMU_VFIO_IOAS</c> (12 bytes): get or set the IOAS used by the VFIO container compatibility layer.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_vfio_ioas
{
    /// <summary>Input: size of the structure (12).</summary>
    public uint size;

    /// <summary>In (SET) / out (GET): the compatibility IOAS id.</summary>
    public uint ioas_id;

    /// <summary>Input: <c>IOMMU_VFIO_IOAS_GET</c>, <c>_SET</c> or <c>_CLEAR</c>.</summary>
    public ushort op;

    /// <summary>Must be 0.</summary>
    public ushort __reserved;
}

internal static partial class IommuUapi
{
    /// <summary><c>iommu_ioas_map.flags</c>: map at the given <c>iova</c> instead of letting the kernel choose.</summary>
    public const uint IOMMU_IOAS_MAP_FIXED_IOVA = 1u << 0;

    /// <summary><c>iommu_ioas_map.flags</c>: the device may write the memory.</summary>
    public const uint IOMMU_IOAS_MAP_WRITEABLE = 1u << 1;

    /// <summary><c>iommu_ioas_map.flags</c>: the device may read the memory.</summary>
    public const uint IOMMU_IOAS_MAP_READABLE = 1u << 2;

    /// <summary><c>iommu_vfio_ioas.op</c>: return the compatibility IOAS.</summary>
    public const ushort IOMMU_VFIO_IOAS_GET = 0;

    /// <summary><c>iommu_vfio_ioas.op</c>: make <c>ioas_id</c> the compatibility IOAS.</summary>
    public const ushort IOMMU_VFIO_IOAS_SET = 1;

    /// <summary><c>iommu_vfio_ioas.op</c>: forget the compatibility IOAS (it is not destroyed).</summary>
    public const ushort IOMMU_VFIO_IOAS_CLEAR = 2;

    /// <summary><c>IOMMU_IOAS_ALLOC</c> (iommufd; <c>struct iommu_ioas_alloc *</c>, in/out).</summary>
    public static readonly uint IOMMU_IOAS_ALLOC = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_ALLOC);

    /// <summary><c>IOMMU_IOAS_ALLOW_IOVAS</c> (iommufd; <c>struct iommu_ioas_allow_iovas *</c>, in).</summary>
    public static readonly uint IOMMU_IOAS_ALLOW_IOVAS = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_ALLOW_IOVAS);

    /// <summary><c>IOMMU_IOAS_COPY</c> (iommufd; <c>struct iommu_ioas_copy *</c>, in/out).</summary>
    public static readonly uint IOMMU_IOAS_COPY = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_COPY);

    /// <summary><c>IOMMU_IOAS_IOVA_RANGES</c> (iommufd; <c>struct iommu_ioas_iova_ranges *</c>, in/out).</summary>
    public static readonly uint IOMMU_IOAS_IOVA_RANGES = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_IOVA_RANGES);

    /// <summary><c>IOMMU_IOAS_MAP</c> (iommufd; <c>struct iommu_ioas_map *</c>, in/out).</summary>
    public static readonly uint IOMMU_IOAS_MAP = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_MAP);

    /// <summary><c>IOMMU_IOAS_UNMAP</c> (iommufd; <c>struct iommu_ioas_unmap *</c>, in/out).</summary>
    public static readonly uint IOMMU_IOAS_UNMAP = IoctlEncoding.Io(IOMMUFD_CMD_IOAS_UNMAP);

    /// <summary><c>IOMMU_VFIO_IOAS</c> (iommufd; <c>struct iommu_vfio_ioas *</c>, in/out).</summary>
    public static readonly uint IOMMU_VFIO_IOAS = IoctlEncoding.Io(IOMMUFD_CMD_VFIO_IOAS);
}
