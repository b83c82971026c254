// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A device model of the simulated machine (edu, a virtio-mmio entropy device, ...). While it is bound to a VFIO driver,
/// the model's VFIO bus driver serves its device fds.
/// </summary>
public abstract class EmulatedDevice
{
    /// <summary>Creates the model.</summary>
    protected EmulatedDevice()
    {
    }

    /// <summary>The sysfs attributes of the device's folder, e.g. PCI's <c>vendor</c>, <c>device</c>, <c>class</c>.</summary>
    public virtual IReadOnlyDictionary<string, string> SysfsAttributes { get; } = new Dictionary<string, string>();

    /// <summary>Creates the VFIO bus driver that serves this model's device fds (vfio-pci core, vfio-platform).</summary>
    internal abstract VfioBusDriver CreateVfioDriver();
}
