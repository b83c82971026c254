// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The no-IOMMU backend (vfio_noiommu_group_alloc): accepts only type 8, implements no DMA ioctls (<c>ENOTTY</c>), and lets devices DMA
/// to physical addresses untranslated: the machine's <see cref="SimulatedPhysicalMemory"/>, whose frames
/// <c>/proc/self/pagemap</c> reports.
/// </summary>
internal sealed class NoIommuDriver(SimulatedPhysicalMemory memory) : IVfioIommuDriver
{
    internal static IommuBackendRegistration Registration(SimulatedKernel kernel) => new(
        "vfio-noiommu",
        ForNoIommu: true,
        CheckExtension: ext => ext == VfioUapi.VFIO_NOIOMMU_IOMMU && kernel.Topology.UnsafeNoIommuMode ? 1 : 0,
        Open: type => type != VfioUapi.VFIO_NOIOMMU_IOMMU
            ? (-(int)Errno.EINVAL, null)
            : !kernel.Topology.Privileged ? (-(int)Errno.EPERM, null) : (0, new NoIommuDriver(kernel.PhysicalMemory)));

    public int CheckExtension(uint extension) => extension == VfioUapi.VFIO_NOIOMMU_IOMMU ? 1 : 0;

    public int Ioctl(uint request, nint argument) => -(int)Errno.ENOTTY;

    public int AttachGroup(SimGroup group)
    {
        foreach (SimDevice device in group.Devices)
        {
            device.Dma = memory;
        }
        return 0;
    }

    public void DetachGroup(SimGroup group)
    {
        foreach (SimDevice device in group.Devices)
        {
            device.Dma = null;
        }
    }

    public void Release()
    {
    }
}
