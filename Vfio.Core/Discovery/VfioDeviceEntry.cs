// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// A device as sysfs shows it to VFIO: where it is, what it is, its driver, its IOMMU group with the group's viability,
/// and the <c>/dev</c> nodes a backend would open. <see cref="VfioSysfs.ListDevices"/> returns them.
/// </summary>
/// <remarks>
/// A group is <see cref="IsGroupViable">viable</see> when no member is bound to a host driver that owns DMA (the
/// kernel's <c>iommu_group_dma_owner_claimed</c>): every member is bound to a VFIO driver, to <c>pci-stub</c> or
/// <c>pcieport</c>, or to nothing. Only then does <c>VFIO_GROUP_GET_STATUS</c> report <c>VFIO_GROUP_FLAGS_VIABLE</c>
/// and can iommufd bind a cdev of the group; <see cref="GroupBlockers"/> names the members that prevent it.
/// </remarks>
public sealed class VfioDeviceEntry
{
    internal VfioDeviceEntry(string name, VfioBus bus, string sysfsPath, ushort? vendorId, ushort? deviceId, uint? pciClass, string? driver,
        int? iommuGroup, bool isNoIommuGroup, IReadOnlyList<VfioGroupMember> groupMembers, string? groupNode, string? cdevPath)
    {
        Name = name;
        Bus = bus;
        SysfsPath = sysfsPath;
        VendorId = vendorId;
        DeviceId = deviceId;
        PciClass = pciClass;
        Driver = driver;
        IommuGroup = iommuGroup;
        IsNoIommuGroup = isNoIommuGroup;
        GroupMembers = groupMembers;
        GroupNode = groupNode;
        CdevPath = cdevPath;
        GroupBlockers = [.. groupMembers.Where(static m => !m.KeepsGroupViable)];
    }

    /// <summary>The device's name: a PCI address (<c>0000:00:02.0</c>) or a platform device name.</summary>
    public string Name { get; }

    /// <summary>The device's bus.</summary>
    public VfioBus Bus { get; }

    /// <summary>The device's sysfs directory, e.g. <c>/sys/bus/pci/devices/0000:00:02.0</c>.</summary>
    public string SysfsPath { get; }

    /// <summary>The PCI vendor id (sysfs <c>vendor</c>); null for a platform device.</summary>
    public ushort? VendorId { get; }

    /// <summary>The PCI device id (sysfs <c>device</c>); null for a platform device.</summary>
    public ushort? DeviceId { get; }

    /// <summary>The PCI class code (sysfs <c>class</c>, 24 bits: base class, subclass, programming interface, e.g.
    /// <c>0x060400</c>); null for a platform device.</summary>
    public uint? PciClass { get; }

    /// <summary>
    /// True for a PCI-to-PCI bridge (class 0x0604xx, or 0x0609xx semi-transparent) or a CardBus bridge (0x0607xx). VFIO
    /// does not assign bridges: vfio-pci refuses any device whose configuration header is not the normal (type 0) one
    /// (<c>vfio_pci_core_register_device</c>), and these classes have a type 1 or 2 header. A bridge matters to VFIO only
    /// through its IOMMU group, which a conventional PCI bridge shares with the devices behind it: unbound (or on
    /// <c>pcieport</c>) it keeps that group viable.
    /// </summary>
    public bool IsPciBridge => VfioSysfs.IsPciBridgeClass(PciClass);

    /// <summary>The driver the device is bound to, or null when unbound.</summary>
    public string? Driver { get; }

    /// <summary>True when the device is bound to a VFIO driver (<see cref="VfioSysfs.IsVfioDriver"/>).</summary>
    public bool IsBoundToVfio => VfioSysfs.IsVfioDriver(Driver);

    /// <summary>The IOMMU group number, or null when the device has none.</summary>
    public int? IommuGroup { get; }

    /// <summary>True when the group is a fake no-IOMMU group (<c>/dev/vfio/noiommu-N</c>): no DMA protection at all.</summary>
    public bool IsNoIommuGroup { get; }

    /// <summary>Every member of the device's IOMMU group (the device included) with its driver.</summary>
    public IReadOnlyList<VfioGroupMember> GroupMembers { get; }

    /// <summary>The members of the group bound to a host driver that owns DMA, which make the group not viable.</summary>
    public IReadOnlyList<VfioGroupMember> GroupBlockers { get; }

    /// <summary>True when the device has a group and no member blocks it (see the remarks).</summary>
    public bool IsGroupViable => IommuGroup is not null && GroupBlockers.Count == 0;

    /// <summary>The group's node, <c>/dev/vfio/N</c> or <c>/dev/vfio/noiommu-N</c>; null when it has none (no member
    /// bound to a VFIO driver).</summary>
    public string? GroupNode { get; }

    /// <summary>The device's VFIO cdev, <c>/dev/vfio/devices/vfioN</c>; null when it has none.</summary>
    public string? CdevPath { get; }

    /// <summary>The device as a source for <see cref="IIommuBackend.AttachDevice"/>.</summary>
    /// <returns>The source.</returns>
    public VfioDeviceSource ToSource() => Bus == VfioBus.Pci ? VfioDeviceSource.Pci(Name) : VfioDeviceSource.FromSysfsPath(SysfsPath);

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Driver ?? "no driver"}, group {IommuGroup?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"})";
}
