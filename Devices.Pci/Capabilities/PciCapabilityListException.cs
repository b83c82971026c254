// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>What is wrong with a capability list (<see cref="PciCapabilityListException.Fault"/>).</summary>
public enum PciCapabilityListFault
{
    /// <summary>The list comes back to a capability it already visited.</summary>
    Loop,

    /// <summary>A pointer leaves its list's space: a standard pointer into the header (below 0x40), an extended one
    /// below 0x100.</summary>
    PointerOutOfRange,

    /// <summary>The list points past the end of the configuration space the kernel exposes, or the extended list
    /// reads as all-ones after its first capability (the space ends there).</summary>
    Truncated,
}

/// <summary>
/// A PCI capability list (standard or extended) is malformed: it loops, points out of its space, or is cut short. The
/// device's configuration space cannot be trusted as a list; nothing was left open by the walk.
/// </summary>
public sealed class PciCapabilityListException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="deviceName">The device.</param>
    /// <param name="fault">What is wrong.</param>
    /// <param name="isExtended">True for the extended list.</param>
    /// <param name="offset">The offending pointer (or the capability whose pointer offends).</param>
    /// <param name="detail">What was found.</param>
    public PciCapabilityListException(string deviceName, PciCapabilityListFault fault, bool isExtended, int offset, string detail)
        : base(OperationName, deviceName, detail,
            "The device's configuration space is inconsistent: reset the device (or the slot) and try again; if it persists, the device or its firmware is faulty and its capabilities cannot be used.")
    {
        Fault = fault;
        IsExtended = isExtended;
        Offset = offset;
    }

    /// <summary>The operation named in the message.</summary>
    internal const string OperationName = "PCI capability walk";

    /// <summary>What is wrong.</summary>
    public PciCapabilityListFault Fault { get; }

    /// <summary>True when the extended list is at fault, false for the standard one.</summary>
    public bool IsExtended { get; }

    /// <summary>The offending offset in configuration space.</summary>
    public int Offset { get; }
}
