// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>What an IOMMU backend, or one of its containers, can do.</summary>
[Flags]
public enum IommuBackendFeatures
{
    /// <summary>Nothing beyond attach, map and unmap.</summary>
    None = 0,

    /// <summary>Dirty-page tracking of DMA writes (Type1 <c>VFIO_IOMMU_DIRTY_PAGES</c>, iommufd HWPT dirty tracking).</summary>
    DirtyTracking = 1 << 0,

    /// <summary>A PCI hot reset proves ownership with the fds of the affected groups (legacy).</summary>
    HotResetByGroupFds = 1 << 1,

    /// <summary>A PCI hot reset proves ownership by the bound devices' iommufd (an empty fd array).</summary>
    HotResetByDeviceIds = 1 << 2,

    /// <summary>DMA windows are created and removed explicitly (sPAPR TCE v2).</summary>
    DmaWindows = 1 << 3,

    /// <summary>EEH PE operations on the container (sPAPR, one group per container).</summary>
    Eeh = 1 << 4,

    /// <summary>Memory is pre-registered before it is mapped (sPAPR TCE v2).</summary>
    MemoryPreRegistration = 1 << 5,

    /// <summary>The kernel can choose the IOVA of a mapping (iommufd <c>IOMMU_IOAS_MAP</c> without a fixed IOVA).</summary>
    KernelChosenIova = 1 << 6,

    /// <summary>Works with fds a management layer passed, without opening <c>/dev</c> paths itself.</summary>
    PassedFds = 1 << 7,
}
