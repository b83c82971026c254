// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): the container fd (/dev/vfio/vfio) and its extensions.
namespace Vfio.Core.Interop;

internal static partial class VfioUapi
{
    /// <summary>Extension / IOMMU type 1: Type1 IOMMU, v1 unmap semantics (<c>VFIO_CHECK_EXTENSION</c>, <c>VFIO_SET_IOMMU</c>).</summary>
    public const uint VFIO_TYPE1_IOMMU = 1;

    /// <summary>Extension / IOMMU type 2: sPAPR TCE IOMMU, v1 (one group per container, <c>VFIO_IOMMU_ENABLE</c>).</summary>
    public const uint VFIO_SPAPR_TCE_IOMMU = 2;

    /// <summary>Extension / IOMMU type 3: Type1 IOMMU, v2 semantics (unmap never splits a mapping; dirty tracking).</summary>
    public const uint VFIO_TYPE1v2_IOMMU = 3;

    /// <summary>Extension 4: every IOMMU domain of the container enforces DMA cache coherency.</summary>
    public const uint VFIO_DMA_CC_IOMMU = 4;

    /// <summary>Extension 5: sPAPR EEH (<c>VFIO_EEH_PE_OP</c>) is available.</summary>
    public const uint VFIO_EEH = 5;

    /// <summary>Extension / IOMMU type 6: Type1 v2 with nesting (still this name in 6.12; renamed reserved later).</summary>
    public const uint VFIO_TYPE1_NESTING_IOMMU = 6;

    /// <summary>Extension / IOMMU type 7: sPAPR TCE IOMMU, v2 (pre-registration, dynamic DMA windows).</summary>
    public const uint VFIO_SPAPR_TCE_v2_IOMMU = 7;

    /// <summary>Extension / IOMMU type 8: no-IOMMU mode (unsafe; no DMA mapping ioctls).</summary>
    public const uint VFIO_NOIOMMU_IOMMU = 8;

    /// <summary>Extension 9: <c>VFIO_DMA_UNMAP_FLAG_ALL</c> is supported.</summary>
    public const uint VFIO_UNMAP_ALL = 9;

    /// <summary>Extension 10: <c>VFIO_DMA_MAP_FLAG_VADDR</c> / <c>VFIO_DMA_UNMAP_FLAG_VADDR</c> are supported.</summary>
    public const uint VFIO_UPDATE_VADDR = 10;

    /// <summary><c>VFIO_GET_API_VERSION</c> (container or iommufd fd; no argument; returns <c>VFIO_API_VERSION</c>).</summary>
    public static readonly uint VFIO_GET_API_VERSION = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 0);

    /// <summary><c>VFIO_CHECK_EXTENSION</c> (container or iommufd fd; extension id by value; returns 0 or a positive value).</summary>
    public static readonly uint VFIO_CHECK_EXTENSION = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 1);

    /// <summary><c>VFIO_SET_IOMMU</c> (container or iommufd fd; IOMMU type by value; needs an attached group).</summary>
    public static readonly uint VFIO_SET_IOMMU = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 2);
}
