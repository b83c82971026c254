// SPDX-License-Identifier: MIT
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>The flags of <c>VFIO_DEVICE_GET_INFO</c> (<c>VFIO_DEVICE_FLAGS_*</c>): the bus driver and what the
/// device supports.</summary>
[Flags]
public enum VfioDeviceFlags : uint
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary><c>VFIO_DEVICE_FLAGS_RESET</c>: <c>VFIO_DEVICE_RESET</c> is supported.</summary>
    Reset = VfioUapi.VFIO_DEVICE_FLAGS_RESET,

    /// <summary><c>VFIO_DEVICE_FLAGS_PCI</c>: a vfio-pci device.</summary>
    Pci = VfioUapi.VFIO_DEVICE_FLAGS_PCI,

    /// <summary><c>VFIO_DEVICE_FLAGS_PLATFORM</c>: a vfio-platform device.</summary>
    Platform = VfioUapi.VFIO_DEVICE_FLAGS_PLATFORM,

    /// <summary><c>VFIO_DEVICE_FLAGS_AMBA</c>: a vfio-amba device.</summary>
    Amba = VfioUapi.VFIO_DEVICE_FLAGS_AMBA,

    /// <summary><c>VFIO_DEVICE_FLAGS_CCW</c>: an s390 vfio-ccw device.</summary>
    Ccw = VfioUapi.VFIO_DEVICE_FLAGS_CCW,

    /// <summary><c>VFIO_DEVICE_FLAGS_AP</c>: an s390 vfio-ap device.</summary>
    Ap = VfioUapi.VFIO_DEVICE_FLAGS_AP,

    /// <summary><c>VFIO_DEVICE_FLAGS_FSL_MC</c>: a vfio-fsl-mc device.</summary>
    FslMc = VfioUapi.VFIO_DEVICE_FLAGS_FSL_MC,

    /// <summary><c>VFIO_DEVICE_FLAGS_CAPS</c>: the info carries a capability chain.</summary>
    Capabilities = VfioUapi.VFIO_DEVICE_FLAGS_CAPS,

    /// <summary><c>VFIO_DEVICE_FLAGS_CDX</c>: a vfio-cdx device.</summary>
    Cdx = VfioUapi.VFIO_DEVICE_FLAGS_CDX,
}

/// <summary>The PCIe AtomicOp completer sizes a device can use end to end
/// (<c>VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP</c>).</summary>
[Flags]
public enum VfioPciAtomicCompleter : uint
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary><c>VFIO_PCI_ATOMIC_COMP32</c>: 32-bit AtomicOp completion.</summary>
    Comp32 = VfioUapi.VFIO_PCI_ATOMIC_COMP32,

    /// <summary><c>VFIO_PCI_ATOMIC_COMP64</c>: 64-bit AtomicOp completion.</summary>
    Comp64 = VfioUapi.VFIO_PCI_ATOMIC_COMP64,

    /// <summary><c>VFIO_PCI_ATOMIC_COMP128</c>: 128-bit CAS completion.</summary>
    Comp128 = VfioUapi.VFIO_PCI_ATOMIC_COMP128,
}

/// <summary>What <c>VFIO_DEVICE_GET_INFO</c> says about a device: its bus, its region and IRQ index counts, and its
/// capabilities.</summary>
public sealed class VfioDeviceInfo
{
    internal VfioDeviceInfo(VfioDeviceFlags flags, int regionCount, int irqCount, IReadOnlyList<VfioCapability> capabilities, VfioPciAtomicCompleter? pciAtomicCompleter)
    {
        Flags = flags;
        RegionCount = regionCount;
        IrqCount = irqCount;
        Capabilities = capabilities;
        PciAtomicCompleter = pciAtomicCompleter;
    }

    /// <summary>The device flags as the kernel reported them.</summary>
    public VfioDeviceFlags Flags { get; }

    /// <summary>The number of regions; valid region indexes are below it (some may still be absent, e.g. vfio-pci's
    /// VGA region of a non-VGA device).</summary>
    public int RegionCount { get; }

    /// <summary>The number of IRQ indexes.</summary>
    public int IrqCount { get; }

    /// <summary>Whether the device is a vfio-pci device.</summary>
    public bool IsPci => (Flags & VfioDeviceFlags.Pci) != 0;

    /// <summary>Whether the device is a vfio-platform or vfio-amba device.</summary>
    public bool IsPlatform => (Flags & (VfioDeviceFlags.Platform | VfioDeviceFlags.Amba)) != 0;

    /// <summary>Whether <see cref="VfioDevice.Reset"/> is supported (<c>VFIO_DEVICE_FLAGS_RESET</c>).</summary>
    public bool SupportsReset => (Flags & VfioDeviceFlags.Reset) != 0;

    /// <summary>The device-info capability chain, in chain order (empty when there is none).</summary>
    public IReadOnlyList<VfioCapability> Capabilities { get; }

    /// <summary>The AtomicOp completer sizes from <c>VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP</c>, or null when the
    /// capability is absent.</summary>
    public VfioPciAtomicCompleter? PciAtomicCompleter { get; }

    /// <inheritdoc/>
    public override string ToString() => $"flags {Flags}, {RegionCount} regions, {IrqCount} IRQ indexes, {Capabilities.Count} capabilities";
}
