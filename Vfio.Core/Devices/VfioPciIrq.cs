// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The interrupt indexes vfio-pci gives every PCI device (<c>VFIO_PCI_*_IRQ_INDEX</c> of <c>linux/vfio.h</c>), for
/// <see cref="VfioDevice.GetIrq(int)"/>, <see cref="VfioDevice.SetIrqEventFds(int, int, ReadOnlySpan{InterruptEvent})"/>
/// and the other IRQ calls. How many vectors an index has is in <see cref="VfioIrqInfo.Count"/>.
/// </summary>
public static class VfioPciIrq
{
    /// <summary>The legacy INTx line (<c>VFIO_PCI_INTX_IRQ_INDEX</c>): one vector, masked by the kernel when it fires.</summary>
    public const int Intx = 0;

    /// <summary>MSI (<c>VFIO_PCI_MSI_IRQ_INDEX</c>): up to 32 vectors.</summary>
    public const int Msi = 1;

    /// <summary>MSI-X (<c>VFIO_PCI_MSIX_IRQ_INDEX</c>): up to 2048 vectors.</summary>
    public const int Msix = 2;

    /// <summary>The error (AER) notification (<c>VFIO_PCI_ERR_IRQ_INDEX</c>).</summary>
    public const int Error = 3;

    /// <summary>The device-release request (<c>VFIO_PCI_REQ_IRQ_INDEX</c>): the kernel asks the user to let the device go.</summary>
    public const int Request = 4;
}
