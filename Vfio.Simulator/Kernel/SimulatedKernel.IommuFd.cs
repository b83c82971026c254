// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    /// <summary>
    /// The simulated IOMMU can track dirty pages (VT-d second-stage A/D bits, <c>ecap.SSADS</c>): iommufd then reports
    /// <c>IOMMU_HW_CAP_DIRTY_TRACKING</c> and accepts <c>IOMMU_HWPT_ALLOC_DIRTY_TRACKING</c>. Off by default, as on
    /// QEMU's emulated VT-d.
    /// </summary>
    public bool IommuDirtyTracking { get; set; }

    /// <summary>Which iommufd context each device is bound to (cdev or group path): DMA ownership of its group.</summary>
    internal Dictionary<SimDevice, DeviceObject> IommuFdBindings { get; } = [];
}
