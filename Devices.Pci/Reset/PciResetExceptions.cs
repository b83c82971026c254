// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// The device cannot be reset the way asked: it has no function reset (<see cref="VfioPciDevice.Reset"/>), or neither
/// its slot nor its bus can be reset (<see cref="VfioPciDevice.HotReset()"/>: a device on the root bus, or sharing a bus
/// with a device that blocks a bus reset).
/// </summary>
public sealed class PciResetUnavailableException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="operation">The reset's ioctl.</param>
    /// <param name="deviceName">The device.</param>
    /// <param name="detail">What is missing.</param>
    /// <param name="hint">What to do instead.</param>
    /// <param name="errno">The kernel's errno, or <see cref="Errno.None"/> when the library decided.</param>
    public PciResetUnavailableException(string operation, string deviceName, string detail, string hint, Errno errno = Errno.None)
        : base(operation, deviceName, detail, hint)
    {
        KernelErrno = errno;
    }

    /// <summary>The kernel's answer when it refused (<c>ENODEV</c>: no slot or bus reset); <see cref="Errno.None"/>
    /// when the library saw it from the device's flags.</summary>
    public Errno KernelErrno { get; }
}

/// <summary>
/// A PCI hot reset would reset a device this process does not own: its IOMMU group is not among the groups the legacy
/// backend holds, or (iommufd) it is not bound to the same iommufd. Nothing was reset.
/// </summary>
public sealed class PciHotResetOwnershipException : VfioDeviceUnusableException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="deviceName">The device whose reset was asked.</param>
    /// <param name="affectedDevice">The affected device the proof misses.</param>
    /// <param name="detail">Why it is not owned.</param>
    /// <param name="hint">What to do.</param>
    public PciHotResetOwnershipException(string deviceName, string affectedDevice, string detail, string hint)
        : base("VFIO_DEVICE_PCI_HOT_RESET", deviceName, detail, hint)
    {
        AffectedDevice = affectedDevice;
    }

    /// <summary>The affected device (PCI address) that the proof does not cover.</summary>
    public string AffectedDevice { get; }
}
