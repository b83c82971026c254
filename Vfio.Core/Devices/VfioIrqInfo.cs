// SPDX-License-Identifier: MIT
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>The flags of an IRQ index (<c>VFIO_IRQ_INFO_*</c>).</summary>
[Flags]
public enum VfioIrqFlags : uint
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary><c>VFIO_IRQ_INFO_EVENTFD</c>: the interrupts can signal eventfds.</summary>
    EventFd = VfioUapi.VFIO_IRQ_INFO_EVENTFD,

    /// <summary><c>VFIO_IRQ_INFO_MASKABLE</c>: MASK and UNMASK are supported.</summary>
    Maskable = VfioUapi.VFIO_IRQ_INFO_MASKABLE,

    /// <summary><c>VFIO_IRQ_INFO_AUTOMASKED</c>: the kernel masks the line when it fires; unmask it after handling
    /// each interrupt (level-triggered INTx, platform level IRQs).</summary>
    Automasked = VfioUapi.VFIO_IRQ_INFO_AUTOMASKED,

    /// <summary><c>VFIO_IRQ_INFO_NORESIZE</c>: the set of enabled vectors cannot grow without disabling the index
    /// first.</summary>
    NoResize = VfioUapi.VFIO_IRQ_INFO_NORESIZE,
}

/// <summary>What <c>VFIO_DEVICE_GET_IRQ_INFO</c> says about one IRQ index.</summary>
/// <param name="Index">The IRQ index (for vfio-pci: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4).</param>
/// <param name="Flags">The flags as the kernel reported them.</param>
/// <param name="Count">The number of interrupts (vectors) at this index; 0 when the index is unavailable.</param>
public readonly record struct VfioIrqInfo(int Index, VfioIrqFlags Flags, int Count)
{
    /// <summary>Whether the interrupts can signal eventfds.</summary>
    public bool SupportsEventFd => (Flags & VfioIrqFlags.EventFd) != 0;

    /// <summary>Whether MASK and UNMASK are supported.</summary>
    public bool IsMaskable => (Flags & VfioIrqFlags.Maskable) != 0;

    /// <summary>Whether the kernel masks the line on each interrupt (it must be unmasked after handling).</summary>
    public bool IsAutomasked => (Flags & VfioIrqFlags.Automasked) != 0;

    /// <summary>Whether enabled vectors cannot be added without disabling the index first.</summary>
    public bool IsNoResize => (Flags & VfioIrqFlags.NoResize) != 0;
}

/// <summary>The access a <c>VFIO_DEVICE_FEATURE</c> call asks for.</summary>
[Flags]
public enum VfioFeatureAccess
{
    /// <summary>Neither (only meaningful for a probe, which then tests whether the feature exists at all).</summary>
    None = 0,

    /// <summary><c>VFIO_DEVICE_FEATURE_GET</c>.</summary>
    Get = 1,

    /// <summary><c>VFIO_DEVICE_FEATURE_SET</c>.</summary>
    Set = 2,
}
