// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): vfio-pci fixed indexes and PCI hot reset.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary>
/// <c>struct vfio_pci_dependent_device</c>: one element of <c>vfio_pci_hot_reset_info.devices[]</c>, a device
/// affected by a hot reset of the calling device.
/// </summary>
/// <remarks>
/// <see cref="group_id"/> and <see cref="devid"/> share the first 4 bytes (an anonymous union in C): the group
/// path reports the IOMMU group id; the cdev path (<c>VFIO_PCI_HOT_RESET_FLAG_DEV_ID</c>) reports the iommufd
/// device id, <c>VFIO_PCI_DEVID_OWNED</c> or <c>VFIO_PCI_DEVID_NOT_OWNED</c>.
/// </remarks>
[StructLayout(LayoutKind.Explicit)]
internal struct vfio_pci_dependent_device
{
    /// <summary>Output (group path): IOMMU group id of the device.</summary>
    [FieldOffset(0)]
    public uint group_id;

    /// <summary>Output (cdev path): iommufd device id, <c>VFIO_PCI_DEVID_OWNED</c> or <c>VFIO_PCI_DEVID_NOT_OWNED</c>.</summary>
    [FieldOffset(0)]
    public uint devid;

    /// <summary>Output: PCI segment (domain).</summary>
    [FieldOffset(4)]
    public ushort segment;

    /// <summary>Output: PCI bus number.</summary>
    [FieldOffset(6)]
    public byte bus;

    /// <summary>Output: PCI device (bits 7–3) and function (bits 2–0).</summary>
    [FieldOffset(7)]
    public byte devfn;
}

/// <summary><c>struct vfio_pci_hot_reset_info</c>, the argument of <c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c> (12 bytes + devices).</summary>
/// <remarks>
/// The flexible array <c>devices[]</c> of <see cref="vfio_pci_dependent_device"/> follows at
/// <see cref="devices_offset"/>. When <see cref="argsz"/> is too small for all devices the ioctl fails with
/// <c>ENOSPC</c> and <see cref="count"/> holds the number needed.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_pci_hot_reset_info
{
    /// <summary>Offset of the flexible array <c>devices[]</c> from the start of the structure.</summary>
    public const int devices_offset = 12;

    /// <summary>Input: size of the structure plus room for <c>devices[]</c>.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_PCI_HOT_RESET_FLAG_*</c>.</summary>
    public uint flags;

    /// <summary>Output: number of affected devices.</summary>
    public uint count;
}

/// <summary><c>struct vfio_pci_hot_reset</c>, the argument of <c>VFIO_DEVICE_PCI_HOT_RESET</c> (12 bytes + group fds).</summary>
/// <remarks>
/// The flexible array <c>group_fds[]</c> (<see cref="count"/> × <c>__s32</c>) follows at
/// <see cref="group_fds_offset"/>: on the group path the fds of every affected group, on the cdev path empty.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_pci_hot_reset
{
    /// <summary>Offset of the flexible array <c>group_fds[]</c> from the start of the structure.</summary>
    public const int group_fds_offset = 12;

    /// <summary>Input: size of the structure plus <c>group_fds[]</c>.</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: number of entries in <c>group_fds[]</c>.</summary>
    public uint count;
}

internal static partial class VfioUapi
{
    /// <summary>vfio-pci region index of BAR0.</summary>
    public const uint VFIO_PCI_BAR0_REGION_INDEX = 0;

    /// <summary>vfio-pci region index of BAR1.</summary>
    public const uint VFIO_PCI_BAR1_REGION_INDEX = 1;

    /// <summary>vfio-pci region index of BAR2.</summary>
    public const uint VFIO_PCI_BAR2_REGION_INDEX = 2;

    /// <summary>vfio-pci region index of BAR3.</summary>
    public const uint VFIO_PCI_BAR3_REGION_INDEX = 3;

    /// <summary>vfio-pci region index of BAR4.</summary>
    public const uint VFIO_PCI_BAR4_REGION_INDEX = 4;

    /// <summary>vfio-pci region index of BAR5.</summary>
    public const uint VFIO_PCI_BAR5_REGION_INDEX = 5;

    /// <summary>vfio-pci region index of the expansion ROM.</summary>
    public const uint VFIO_PCI_ROM_REGION_INDEX = 6;

    /// <summary>vfio-pci region index of the (virtualized) config space.</summary>
    public const uint VFIO_PCI_CONFIG_REGION_INDEX = 7;

    /// <summary>vfio-pci region index of the legacy VGA ranges (VGA-class devices only).</summary>
    public const uint VFIO_PCI_VGA_REGION_INDEX = 8;

    /// <summary>Number of fixed vfio-pci regions; indexes from here on are device-specific (TYPE capability).</summary>
    public const uint VFIO_PCI_NUM_REGIONS = 9;

    /// <summary>vfio-pci IRQ index of INTx.</summary>
    public const uint VFIO_PCI_INTX_IRQ_INDEX = 0;

    /// <summary>vfio-pci IRQ index of MSI.</summary>
    public const uint VFIO_PCI_MSI_IRQ_INDEX = 1;

    /// <summary>vfio-pci IRQ index of MSI-X.</summary>
    public const uint VFIO_PCI_MSIX_IRQ_INDEX = 2;

    /// <summary>vfio-pci IRQ index of the AER error notification (PCIe only).</summary>
    public const uint VFIO_PCI_ERR_IRQ_INDEX = 3;

    /// <summary>vfio-pci IRQ index of the device-release request notification.</summary>
    public const uint VFIO_PCI_REQ_IRQ_INDEX = 4;

    /// <summary>Number of vfio-pci IRQ indexes.</summary>
    public const uint VFIO_PCI_NUM_IRQS = 5;

    /// <summary><c>vfio_pci_hot_reset_info.flags</c>: <c>devices[]</c> carry <c>devid</c> (cdev path), not <c>group_id</c>.</summary>
    public const uint VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1u << 0;

    /// <summary><c>vfio_pci_hot_reset_info.flags</c>: the caller owns every affected device, so the reset may be issued with no group fds.</summary>
    public const uint VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1u << 1;

    /// <summary><c>vfio_pci_dependent_device.devid</c>: owned by the caller's iommufd but not bound (no device id).</summary>
    public const uint VFIO_PCI_DEVID_OWNED = 0;

    /// <summary><c>vfio_pci_dependent_device.devid</c>: not owned by the caller (<c>-1</c> in C).</summary>
    public const uint VFIO_PCI_DEVID_NOT_OWNED = 0xFFFF_FFFF;

    /// <summary><c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c> (vfio-pci device fd; <c>struct vfio_pci_hot_reset_info *</c>, in/out). Same number as <c>VFIO_IOMMU_GET_INFO</c>.</summary>
    public static readonly uint VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 12);

    /// <summary><c>VFIO_DEVICE_PCI_HOT_RESET</c> (vfio-pci device fd; <c>struct vfio_pci_hot_reset *</c> + group fds, in). Same number as <c>VFIO_IOMMU_MAP_DMA</c>.</summary>
    public static readonly uint VFIO_DEVICE_PCI_HOT_RESET = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 13);
}
