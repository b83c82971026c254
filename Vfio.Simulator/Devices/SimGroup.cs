// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// An IOMMU group of the simulated machine and its VFIO group (the model's <c>struct iommu_group</c> +
/// <c>struct vfio_group</c>): its devices, whether its node is open, and what it is attached to.
/// </summary>
internal sealed class SimGroup(int id, bool noIommu)
{
    internal int Id { get; } = id;

    /// <summary>A fake group of no-IOMMU mode (<c>/dev/vfio/noiommu-N</c>).</summary>
    internal bool NoIommu { get; } = noIommu;

    internal List<SimDevice> Devices { get; } = [];

    /// <summary>The node's name under /dev/vfio.</summary>
    internal string NodeName => NoIommu ? $"noiommu-{Id}" : Id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The open group file (one per group, system-wide), if any.</summary>
    internal GroupFile? OpenFile { get; set; }

    /// <summary>The legacy container the group is attached to, if any.</summary>
    internal ContainerFile? Container { get; set; }

    /// <summary>An iommufd the group is attached to as its container (VFIO compat), if any.</summary>
    internal SimFile? IommuFdContainer { get; set; }

    /// <summary>The device fds open through this group.</summary>
    internal int OpenDeviceCount { get; set; }

    /// <summary>DMA ownership of the group is claimed by user space (legacy container attach, or a cdev bind).</summary>
    internal bool UserOwned { get; set; }

    /// <summary>Some device of the group is bound to a kernel driver that claims DMA ownership (not VFIO, not pci-stub,
    /// not pcieport): the group is not viable.</summary>
    internal bool KernelOwned => Devices.Any(d => !d.IsVfio && d.Driver is not ("" or "pci-stub" or "pcieport"));

    /// <summary>Some device of the group is bound through its cdev to an iommufd.</summary>
    internal bool AnyCdevBound => Devices.Any(d => d.BoundThroughCdev);

    /// <summary>Attached to a container or to an iommufd.</summary>
    internal bool Attached => Container is not null || IommuFdContainer is not null;
}
