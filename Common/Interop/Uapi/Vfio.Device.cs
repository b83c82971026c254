// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): device info, the shared capability header, reset and ioeventfds.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary>
/// <c>struct vfio_info_cap_header</c>: the header that starts every capability in the chain returned by
/// <c>VFIO_DEVICE_GET_INFO</c>, <c>VFIO_DEVICE_GET_REGION_INFO</c> and <c>VFIO_IOMMU_GET_INFO</c>.
/// </summary>
/// <remarks>
/// <see cref="next"/> is a byte offset from the start of the enclosing info structure; 0 ends the chain.
/// The kernel rounds each capability up to a multiple of 8 bytes.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_info_cap_header
{
    /// <summary>Output: capability id; its meaning depends on the info ioctl (<c>VFIO_*_CAP_*</c>).</summary>
    public ushort id;

    /// <summary>Output: version of this capability's layout.</summary>
    public ushort version;

    /// <summary>Output: offset of the next capability from the start of the info structure, or 0.</summary>
    public uint next;
}

/// <summary><c>struct vfio_device_info</c>, the argument of <c>VFIO_DEVICE_GET_INFO</c> (24 bytes; the kernel needs 16).</summary>
/// <remarks>A capability chain may follow the structure; see <see cref="cap_offset"/> and <c>VFIO_DEVICE_FLAGS_CAPS</c>.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_info
{
    /// <summary>In/out: size of the caller's buffer; the kernel raises it when the capabilities do not fit.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_DEVICE_FLAGS_*</c>.</summary>
    public uint flags;

    /// <summary>Output: number of regions (valid region indexes are below it).</summary>
    public uint num_regions;

    /// <summary>Output: number of IRQ indexes.</summary>
    public uint num_irqs;

    /// <summary>Output: offset of the first capability from the start of the structure, or 0.</summary>
    public uint cap_offset;

    /// <summary>Padding; written as 0.</summary>
    public uint pad;
}

/// <summary>
/// <c>struct vfio_device_info_cap_pci_atomic_comp</c>: device-info capability
/// <c>VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP</c> (AtomicOp completer widths that are usable end to end).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_info_cap_pci_atomic_comp
{
    /// <summary>Capability header; <c>id</c> is <c>VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP</c>.</summary>
    public vfio_info_cap_header header;

    /// <summary>Output: <c>VFIO_PCI_ATOMIC_COMP32</c>, <c>VFIO_PCI_ATOMIC_COMP64</c>, <c>VFIO_PCI_ATOMIC_COMP128</c>.</summary>
    public uint flags;

    /// <summary>Reserved.</summary>
    public uint reserved;
}

/// <summary>
/// <c>struct vfio_device_ioeventfd</c>, the argument of <c>VFIO_DEVICE_IOEVENTFD</c> (vfio-pci): when the eventfd
/// is signalled the kernel writes <see cref="data"/> at <see cref="offset"/> of the device fd.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_ioeventfd
{
    /// <summary>Input: size of the structure (32).</summary>
    public uint argsz;

    /// <summary>Input: exactly one write width, <c>VFIO_DEVICE_IOEVENTFD_8/16/32/64</c>.</summary>
    public uint flags;

    /// <summary>Input: device fd offset of the write (region offset + offset within the region).</summary>
    public ulong offset;

    /// <summary>Input: value to write; only the low bytes of the chosen width are used.</summary>
    public ulong data;

    /// <summary>Input: eventfd that triggers the write; -1 removes the matching ioeventfd.</summary>
    public int fd;

    /// <summary>Reserved; not checked by 6.12.</summary>
    public uint reserved;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_device_info.flags</c>: <c>VFIO_DEVICE_RESET</c> is supported.</summary>
    public const uint VFIO_DEVICE_FLAGS_RESET = 1u << 0;

    /// <summary><c>vfio_device_info.flags</c>: a vfio-pci device.</summary>
    public const uint VFIO_DEVICE_FLAGS_PCI = 1u << 1;

    /// <summary><c>vfio_device_info.flags</c>: a vfio-platform device.</summary>
    public const uint VFIO_DEVICE_FLAGS_PLATFORM = 1u << 2;

    /// <summary><c>vfio_device_info.flags</c>: a vfio-amba device (handled like a platform device).</summary>
    public const uint VFIO_DEVICE_FLAGS_AMBA = 1u << 3;

    /// <summary><c>vfio_device_info.flags</c>: an s390 vfio-ccw device.</summary>
    public const uint VFIO_DEVICE_FLAGS_CCW = 1u << 4;

    /// <summary><c>vfio_device_info.flags</c>: an s390 vfio-ap device.</summary>
    public const uint VFIO_DEVICE_FLAGS_AP = 1u << 5;

    /// <summary><c>vfio_device_info.flags</c>: a vfio-fsl-mc device.</summary>
    public const uint VFIO_DEVICE_FLAGS_FSL_MC = 1u << 6;

    /// <summary><c>vfio_device_info.flags</c>: a capability chain is reported (<c>cap_offset</c>).</summary>
    public const uint VFIO_DEVICE_FLAGS_CAPS = 1u << 7;

    /// <summary><c>vfio_device_info.flags</c>: a vfio-cdx device.</summary>
    public const uint VFIO_DEVICE_FLAGS_CDX = 1u << 8;

    /// <summary>Device API name of vfio-pci (the mdev <c>device_api</c> sysfs attribute).</summary>
    public const string VFIO_DEVICE_API_PCI_STRING = "vfio-pci";

    /// <summary>Device API name of vfio-platform.</summary>
    public const string VFIO_DEVICE_API_PLATFORM_STRING = "vfio-platform";

    /// <summary>Device API name of vfio-amba.</summary>
    public const string VFIO_DEVICE_API_AMBA_STRING = "vfio-amba";

    /// <summary>Device API name of vfio-ccw.</summary>
    public const string VFIO_DEVICE_API_CCW_STRING = "vfio-ccw";

    /// <summary>Device API name of vfio-ap.</summary>
    public const string VFIO_DEVICE_API_AP_STRING = "vfio-ap";

    /// <summary>Device-info capability id: s390 zPCI base information.</summary>
    public const ushort VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;

    /// <summary>Device-info capability id: s390 zPCI function group information.</summary>
    public const ushort VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;

    /// <summary>Device-info capability id: s390 zPCI utility string.</summary>
    public const ushort VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;

    /// <summary>Device-info capability id: s390 zPCI function path.</summary>
    public const ushort VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;

    /// <summary>Device-info capability id: PCIe AtomicOp completer support (<see cref="vfio_device_info_cap_pci_atomic_comp"/>).</summary>
    public const ushort VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

    /// <summary><c>vfio_device_info_cap_pci_atomic_comp.flags</c>: 32-bit AtomicOp completion supported.</summary>
    public const uint VFIO_PCI_ATOMIC_COMP32 = 1u << 0;

    /// <summary><c>vfio_device_info_cap_pci_atomic_comp.flags</c>: 64-bit AtomicOp completion supported.</summary>
    public const uint VFIO_PCI_ATOMIC_COMP64 = 1u << 1;

    /// <summary><c>vfio_device_info_cap_pci_atomic_comp.flags</c>: 128-bit CAS completion supported.</summary>
    public const uint VFIO_PCI_ATOMIC_COMP128 = 1u << 2;

    /// <summary><c>vfio_device_ioeventfd.flags</c>: 1-byte write.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD_8 = 1u << 0;

    /// <summary><c>vfio_device_ioeventfd.flags</c>: 2-byte write.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD_16 = 1u << 1;

    /// <summary><c>vfio_device_ioeventfd.flags</c>: 4-byte write.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD_32 = 1u << 2;

    /// <summary><c>vfio_device_ioeventfd.flags</c>: 8-byte write.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD_64 = 1u << 3;

    /// <summary>Mask of the write-width bits of <c>vfio_device_ioeventfd.flags</c>.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xF;

    /// <summary><c>VFIO_DEVICE_GET_INFO</c> (device fd; <c>struct vfio_device_info *</c>, in/out).</summary>
    public static readonly uint VFIO_DEVICE_GET_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 7);

    /// <summary><c>VFIO_DEVICE_RESET</c> (device fd; no argument): function reset, if <c>VFIO_DEVICE_FLAGS_RESET</c>.</summary>
    public static readonly uint VFIO_DEVICE_RESET = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 11);

    /// <summary><c>VFIO_DEVICE_IOEVENTFD</c> (vfio-pci device fd; <c>struct vfio_device_ioeventfd *</c>, in).</summary>
    public static readonly uint VFIO_DEVICE_IOEVENTFD = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 16);
}
