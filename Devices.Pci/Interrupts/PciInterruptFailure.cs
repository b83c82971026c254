// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>Why a <see cref="VfioPciInterruptException"/> was raised.</summary>
public enum PciInterruptFailure
{
    /// <summary>The device does not have this interrupt: no INTx pin, no MSI or MSI-X capability, or an IRQ index
    /// the kernel reports with no interrupt (ERR on a conventional PCI device).</summary>
    NotSupported,

    /// <summary>More vectors were asked for than the device's capability offers; <see cref="VfioPciInterruptException.Limit"/>
    /// is the device's maximum.</summary>
    TooManyVectors,

    /// <summary>The kernel could allocate fewer vectors than asked for and enabled none;
    /// <see cref="VfioPciInterruptException.Limit"/> is how many it could.</summary>
    VectorsUnavailable,
}
