// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The device cannot be used as it is: its IOMMU group is not viable, it is bound to another driver, it is
/// already attached, or it was removed. Retrying the same call will not help; the hint says what to change.
/// </summary>
public class VfioDeviceUnusableException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="operation">The operation that found the problem.</param>
    /// <param name="device">The device (or group) concerned.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="hint">What to do about it.</param>
    /// <param name="errno">The errno that revealed it, if any.</param>
    public VfioDeviceUnusableException(string operation, string device, string detail, string? hint = null, Errno errno = Errno.None)
        : base(errno, operation, device, hint, detail, innerException: null)
    {
    }

    /// <summary>
    /// The exception for a PCI device that is a bridge (<see cref="VfioSysfs.IsPciBridgeClass"/>), which no VFIO driver
    /// takes, so the advice to bind it to vfio-pci would be wrong; null when the device is not one. The backends'
    /// preflight (<see cref="IommuBackend"/>) asks it before it says a device is not bound to a VFIO driver.
    /// </summary>
    /// <param name="kernel">The kernel port, for the device's sysfs <c>class</c>.</param>
    /// <param name="operation">The operation that found the problem.</param>
    /// <param name="device">The device that was to be attached.</param>
    /// <returns>The exception, or null.</returns>
    internal static VfioDeviceUnusableException? PciBridge(IKernel kernel, string operation, VfioDeviceSource device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Bus != VfioBus.Pci || device.SysfsPath is not string sysfs || VfioSysfs.GetPciClass(kernel, sysfs) is not uint pciClass
            || !VfioSysfs.IsPciBridgeClass(pciClass))
        {
            return null;
        }
        return new VfioDeviceUnusableException(operation, device.Name,
            $"the device is a PCI bridge (class 0x{pciClass:x6}), which VFIO does not assign: vfio-pci takes only devices with a normal (type 0) configuration header",
            "Attach a device behind the bridge instead. The bridge needs no driver: unbound (or on pcieport) it keeps its IOMMU group viable for the devices that share it.");
    }

    /// <summary>
    /// The exception for a device whose IOMMU group is not viable: a member of the group is bound to a host driver,
    /// which keeps DMA ownership of the whole group, so the kernel gives none of it to user space (legacy
    /// <c>VFIO_GROUP_GET_STATUS</c> without <c>VIABLE</c> and <c>VFIO_GROUP_SET_CONTAINER</c> <c>EPERM</c>; iommufd
    /// <c>VFIO_DEVICE_BIND_IOMMUFD</c> <c>EPERM</c>). The message names each such member and its driver, and the hint
    /// says how to unbind it or bind it to the VFIO driver. Backends build it through <see cref="IommuBackend"/>, so it
    /// reads the same on each.
    /// </summary>
    /// <param name="operation">The operation that found the problem.</param>
    /// <param name="device">The device that was to be attached.</param>
    /// <param name="bus">The bus of the group's devices (for the sysfs paths of the hint).</param>
    /// <param name="group">The IOMMU group number.</param>
    /// <param name="offenders">The members bound to a host driver (<see cref="VfioSysfs.GetHostDriverMembers"/>);
    /// empty when sysfs shows none (then another user of the group is the likely cause).</param>
    /// <param name="errno">The errno that revealed it, if any.</param>
    /// <returns>The exception.</returns>
    internal static VfioDeviceUnusableException GroupNotViable(string operation, string device, VfioBus bus, int group,
        IReadOnlyList<VfioGroupMember> offenders, Errno errno = Errno.None)
    {
        ArgumentNullException.ThrowIfNull(offenders);
        string busName = bus.SysfsName();
        string vfio = bus.VfioDriver();
        string g = group.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (offenders.Count == 0)
        {
            return new VfioDeviceUnusableException(operation, device,
                $"IOMMU group {g} is not viable, but no member of it is bound to a host driver, so another user (a VFIO container or iommufd of another process) may hold it",
                $"Every device of IOMMU group {g} must be bound to a VFIO driver (or pci-stub) or to none, and the group can be used by one process at a time: see /sys/kernel/iommu_groups/{g}/devices.",
                errno);
        }
        var detail = new System.Text.StringBuilder();
        detail.Append("IOMMU group ").Append(g).Append(" is not viable: ");
        var hint = new System.Text.StringBuilder();
        hint.Append("Every device of IOMMU group ").Append(g).Append(" must be bound to ").Append(vfio)
            .Append(" (or pci-stub) or to no driver.");
        for (int i = 0; i < offenders.Count; i++)
        {
            VfioGroupMember m = offenders[i];
            string dir = $"/sys/bus/{busName}/devices/{m.Name}";
            detail.Append(i == 0 ? string.Empty : ", ").Append(m.Name).Append(" (bound to ").Append(m.Driver).Append(')');
            hint.Append(" For ").Append(m.Name).Append(": unbind it from ").Append(m.Driver)
                .Append(" (echo ").Append(m.Name).Append(" > ").Append(dir).Append("/driver/unbind), or bind it to ").Append(vfio)
                .Append(" (echo ").Append(vfio).Append(" > ").Append(dir).Append("/driver_override; echo ").Append(m.Name).Append(" > ")
                .Append(dir).Append("/driver/unbind; echo ").Append(m.Name).Append(" > /sys/bus/").Append(busName).Append("/drivers_probe).");
        }
        detail.Append(offenders.Count == 1 ? " is" : " are").Append(" bound to a host driver, which keeps DMA ownership of the group");
        hint.Append(" Or move ").Append(device).Append(" to a slot with an IOMMU group of its own.");
        return new VfioDeviceUnusableException(operation, device, detail.ToString(), hint.ToString(), errno);
    }
}
