// SPDX-License-Identifier: MIT
// include/uapi/linux/iommufd.h (Linux 6.12): the command numbers; structures and constants are split by topic
// over the IommuFd.*.cs files.
namespace Vfio.Core.Interop;

/// <summary>
/// Constants and ioctl request numbers of <c>linux/iommufd.h</c> (Linux 6.12), spelled as in the header.
/// </summary>
/// <remarks>
/// Every iommufd structure starts with <c>__u32 size</c>: the kernel accepts a shorter structure (missing tail read
/// as zero) and a longer one whose extra bytes are all zero (else <c>E2BIG</c>). Ioctl numbers are computed for the
/// running architecture by <see cref="IoctlEncoding"/>; the ABI tests compare every value with what gcc computes
/// from the kernel headers.
/// </remarks>
internal static partial class IommuUapi
{
    /// <summary><c>IOMMUFD_TYPE</c>, the ioctl type of iommufd (<c>';'</c>, shared with VFIO).</summary>
    public const uint IOMMUFD_TYPE = ';';

    /// <summary>Command number of <c>IOMMU_DESTROY</c> (equal to <c>IOMMUFD_CMD_BASE</c>).</summary>
    public const uint IOMMUFD_CMD_DESTROY = IoctlEncoding.IOMMUFD_CMD_BASE;

    /// <summary>Command number of <c>IOMMU_IOAS_ALLOC</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_ALLOC = 0x81;

    /// <summary>Command number of <c>IOMMU_IOAS_ALLOW_IOVAS</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;

    /// <summary>Command number of <c>IOMMU_IOAS_COPY</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_COPY = 0x83;

    /// <summary>Command number of <c>IOMMU_IOAS_IOVA_RANGES</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;

    /// <summary>Command number of <c>IOMMU_IOAS_MAP</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_MAP = 0x85;

    /// <summary>Command number of <c>IOMMU_IOAS_UNMAP</c>.</summary>
    public const uint IOMMUFD_CMD_IOAS_UNMAP = 0x86;

    /// <summary>Command number of <c>IOMMU_OPTION</c>.</summary>
    public const uint IOMMUFD_CMD_OPTION = 0x87;

    /// <summary>Command number of <c>IOMMU_VFIO_IOAS</c>.</summary>
    public const uint IOMMUFD_CMD_VFIO_IOAS = 0x88;

    /// <summary>Command number of <c>IOMMU_HWPT_ALLOC</c>.</summary>
    public const uint IOMMUFD_CMD_HWPT_ALLOC = 0x89;

    /// <summary>Command number of <c>IOMMU_GET_HW_INFO</c>.</summary>
    public const uint IOMMUFD_CMD_GET_HW_INFO = 0x8A;

    /// <summary>Command number of <c>IOMMU_HWPT_SET_DIRTY_TRACKING</c>.</summary>
    public const uint IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8B;

    /// <summary>Command number of <c>IOMMU_HWPT_GET_DIRTY_BITMAP</c>.</summary>
    public const uint IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8C;

    /// <summary>Command number of <c>IOMMU_HWPT_INVALIDATE</c>.</summary>
    public const uint IOMMUFD_CMD_HWPT_INVALIDATE = 0x8D;

    /// <summary>Command number of <c>IOMMU_FAULT_QUEUE_ALLOC</c> (the last command in 6.12).</summary>
    public const uint IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8E;
}
