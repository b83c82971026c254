// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Devices.Pci;

/// <summary>One device a PCI hot reset affects (<c>struct vfio_pci_dependent_device</c>).</summary>
/// <param name="Address">Its PCI address, <c>DDDD:BB:DD.F</c>.</param>
/// <param name="IommuGroup">Its IOMMU group (group-fd form); null in the device-id form.</param>
/// <param name="DeviceId">Its device id in the caller's iommufd (device-id form) when it is bound there; null
/// otherwise.</param>
/// <param name="IsOwned">Whether the caller's proof covers it: its group is open in this process's backend (group-fd
/// form), or it or a device of its group is bound to the same iommufd (device-id form).</param>
public readonly record struct PciHotResetDevice(string Address, int? IommuGroup, uint? DeviceId, bool IsOwned)
{
    /// <inheritdoc/>
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        string how = IommuGroup is int g ? string.Create(c, $"group {g}") : DeviceId is uint d ? string.Create(c, $"devid {d}") : "devid -";
        return $"{Address} ({how}, {(IsOwned ? "owned" : "not owned")})";
    }
}

/// <summary>What a PCI hot reset of a device would reset (<c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c>).</summary>
public sealed class PciHotResetInfo
{
    internal PciHotResetInfo(PciHotResetDevice[] devices, bool usesDeviceIds)
    {
        Devices = devices;
        UsesDeviceIds = usesDeviceIds;
    }

    /// <summary>Every function the reset affects (the device itself included), as the kernel lists them.</summary>
    public IReadOnlyList<PciHotResetDevice> Devices { get; }

    /// <summary>True when the kernel answered in the device-id form (a device opened through its cdev, iommufd).</summary>
    public bool UsesDeviceIds { get; }

    /// <summary>Whether the caller owns every affected device, so a hot reset can go ahead.</summary>
    public bool AllOwned => Devices.All(d => d.IsOwned);

    /// <inheritdoc/>
    public override string ToString() => $"hot reset affects {Devices.Count} device(s): {string.Join(", ", Devices)}";
}
