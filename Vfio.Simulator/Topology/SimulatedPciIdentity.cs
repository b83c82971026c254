// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Simulator;

/// <summary>
/// What a PCI device's sysfs folder says it is (<c>vendor</c>, <c>device</c>, <c>class</c>, <c>revision</c>,
/// <c>subsystem_vendor</c>, <c>subsystem_device</c>). A model (<see cref="EmulatedPciDevice"/>) gives its own; a device
/// the simulator only shows (<see cref="SimulatedTopology.AddPci"/> with no model) gets one from this record, so that a
/// program reading sysfs sees it as on the real machine.
/// </summary>
/// <param name="VendorId">The PCI vendor ID.</param>
/// <param name="DeviceId">The PCI device ID.</param>
/// <param name="ClassCode">The 24-bit class code (base class, subclass, programming interface), e.g. <c>0x060400</c>.</param>
/// <param name="RevisionId">The revision ID.</param>
/// <param name="SubsystemVendorId">The subsystem vendor ID (0 when the device has none, as a bridge).</param>
/// <param name="SubsystemId">The subsystem ID.</param>
public sealed record SimulatedPciIdentity(ushort VendorId, ushort DeviceId, uint ClassCode, byte RevisionId = 0,
    ushort SubsystemVendorId = 0, ushort SubsystemId = 0)
{
    /// <summary>QEMU's conventional PCI-to-PCI bridge (<c>-device pci-bridge</c>) as QEMU 10 shows it: 1b36:0001, class
    /// 0x060400, revision 0, no subsystem IDs (a type-1 header has none).</summary>
    public static SimulatedPciIdentity QemuPciBridge { get; } = new(0x1b36, 0x0001, 0x060400);

    /// <summary>QEMU's <c>virtio-rng-pci</c> (transitional) as QEMU 10 shows it: 1af4:1005, class 0x00ff00, revision 0,
    /// subsystem 1af4:0004 (virtio device ID 4, entropy).</summary>
    public static SimulatedPciIdentity QemuVirtioRng { get; } = new(0x1af4, 0x1005, 0x00ff00, SubsystemVendorId: 0x1af4, SubsystemId: 0x0004);

    /// <summary>QEMU's PCIe root port (<c>-device pcie-root-port</c>) as QEMU 10 shows it: 1b36:000c, class 0x060400,
    /// revision 0, no subsystem IDs.</summary>
    public static SimulatedPciIdentity QemuPcieRootPort { get; } = new(0x1b36, 0x000c, 0x060400);

    /// <summary>QEMU's edu (<c>-device edu</c>) as QEMU 10 shows it: 1234:11e8, class 0x00ff00, revision 0x10, subsystem
    /// 1af4:1100 — for an edu the simulator only shows (no model).</summary>
    public static SimulatedPciIdentity QemuEdu { get; } = new(0x1234, 0x11e8, 0x00ff00, 0x10, 0x1af4, 0x1100);

    /// <summary>The sysfs attributes in the kernel's format (<c>0x1b36</c>, <c>0x060400</c>, <c>0x00</c>).</summary>
    /// <returns>The attributes by file name.</returns>
    public IReadOnlyDictionary<string, string> ToSysfsAttributes() => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["vendor"] = Hex(VendorId, 4),
        ["device"] = Hex(DeviceId, 4),
        ["class"] = Hex(ClassCode, 6),
        ["revision"] = Hex(RevisionId, 2),
        ["subsystem_vendor"] = Hex(SubsystemVendorId, 4),
        ["subsystem_device"] = Hex(SubsystemId, 4),
    };

    private static string Hex(uint value, int digits) => "0x" + value.ToString("x" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
