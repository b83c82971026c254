// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>Which kind of device interrupt is enabled: vfio-pci allows one of INTx, MSI and MSI-X at a time.</summary>
public enum PciInterruptMode
{
    /// <summary>None is enabled.</summary>
    None,

    /// <summary>The legacy INTx line.</summary>
    Intx,

    /// <summary>MSI.</summary>
    Msi,

    /// <summary>MSI-X.</summary>
    Msix,
}
