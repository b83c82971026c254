// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>An interrupt mode that a reset unwires in the kernel and wires again with the same eventfds.</summary>
internal interface IPciRearmable
{
    /// <summary>Unwires it in the kernel, keeping the eventfds. Caller holds the interrupt lock.</summary>
    void Disarm();

    /// <summary>Wires the kept eventfds again. Caller holds the interrupt lock.</summary>
    void Rearm();
}
