// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// A VFIO bus driver of the model (vfio-pci core, vfio-platform): what a device fd does once the VFIO core has
/// routed a call to the device (drivers/vfio/vfio_main.c, drivers/vfio/pci, drivers/vfio/platform). One instance per bound device.
/// </summary>
internal abstract class VfioBusDriver
{
    /// <summary>The device this driver serves; set once by <see cref="Bind"/>.</summary>
    protected SimDevice Device { get; private set; } = null!;

    internal void Bind(SimDevice device) => Device = device;

    /// <summary>The driver's name in sysfs, e.g. <c>vfio-pci</c>.</summary>
    internal abstract string DriverName { get; }

    /// <summary>The first device fd was opened (the driver's <c>open_device</c>).</summary>
    internal virtual void OpenDevice()
    {
    }

    /// <summary>The last device fd was closed (the driver's <c>close_device</c>): disable interrupts, release eventfds, reset state.</summary>
    internal virtual void CloseDevice()
    {
    }

    /// <summary>The driver's <c>request</c> op (vfio_pci_core_request): asks user space to release the device by
    /// signalling its request eventfd. Returns true when one was registered and signalled.</summary>
    internal virtual bool RequestRelease() => false;

    /// <summary>A device ioctl (GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, RESET, PCI hot reset, FEATURE,
    /// IOEVENTFD); <paramref name="argument"/> is the raw user argument. Returns the result or <c>-errno</c>.</summary>
    internal abstract int Ioctl(uint request, nint argument);

    /// <summary><c>pread</c> on the device fd (region index in the offset's high bits, for vfio-pci <c>index &lt;&lt; 40</c>).</summary>
    internal abstract long Read(Span<byte> buffer, long offset);

    /// <summary><c>pwrite</c> on the device fd.</summary>
    internal abstract long Write(ReadOnlySpan<byte> buffer, long offset);

    /// <summary><c>mmap</c> of a region (or part of one) of the device fd, at an address that is a multiple of
    /// <paramref name="alignment"/> (0: where the kernel chooses).</summary>
    internal abstract int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping);
}
