// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// An IOMMU backend of a legacy container, selected by <c>VFIO_SET_IOMMU</c> (the model's
/// <c>struct vfio_iommu_driver_ops</c>): Type1, sPAPR TCE or no-IOMMU.
/// </summary>
internal interface IVfioIommuDriver
{
    /// <summary>Answers <c>VFIO_CHECK_EXTENSION</c> for the active backend.</summary>
    int CheckExtension(uint extension);

    /// <summary>Every container ioctl the container itself does not handle; <c>-ENOTTY</c> for unknown ones.</summary>
    int Ioctl(uint request, nint argument);

    /// <summary>Attaches a group: its devices then translate DMA through this backend. Returns 0 or <c>-errno</c>.</summary>
    int AttachGroup(SimGroup group);

    /// <summary>Detaches a group; its devices lose their translation.</summary>
    void DetachGroup(SimGroup group);

    /// <summary>The last group left: unmap and unpin everything.</summary>
    void Release();
}
