// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>The bus a simulated device sits on.</summary>
public enum SimulatedBus
{
    /// <summary>PCI: named by its address, e.g. <c>0000:00:02.0</c>; bound to vfio-pci.</summary>
    Pci,
    /// <summary>Platform: named by its device name, e.g. <c>LNRO0005:00</c>; bound to vfio-platform.</summary>
    Platform,
}

/// <summary>
/// A device of the simulated machine (the model's <c>struct device</c> + <c>struct vfio_device</c>): its name, bus,
/// IOMMU group, driver, cdev, and — while bound to a VFIO driver — the bus driver that serves its device fds.
/// </summary>
internal sealed class SimDevice
{
    internal SimDevice(SimulatedKernel kernel, string name, SimulatedBus bus, SimGroup group, string driver, VfioBusDriver? vfioDriver,
        string? parentSysfsPath = null)
    {
        Kernel = kernel;
        Name = name;
        SysfsPath = parentSysfsPath is not null ? $"{parentSysfsPath}/{name}"
            : bus == SimulatedBus.Pci ? $"/sys/devices/pci0000:00/{name}" : $"/sys/devices/platform/{name}";
        Bus = bus;
        Group = group;
        Driver = driver;
        VfioDriver = vfioDriver;
        vfioDriver?.Bind(this);
    }

    internal SimulatedKernel Kernel { get; }

    internal string Name { get; }

    internal SimulatedBus Bus { get; }

    internal SimGroup Group { get; }

    /// <summary>The driver it is bound to (<c>vfio-pci</c>, <c>vfio-platform</c>, or another, e.g. <c>nvme</c>).</summary>
    internal string Driver { get; }

    /// <summary>The VFIO bus driver, when <see cref="Driver"/> is a VFIO driver.</summary>
    internal VfioBusDriver? VfioDriver { get; }

    /// <summary>True when bound to a VFIO driver.</summary>
    internal bool IsVfio => VfioDriver is not null;

    /// <summary>The cdev index N of <c>/dev/vfio/devices/vfioN</c>, when the kernel has cdevs and the device is a VFIO one.</summary>
    internal int? CdevIndex { get; set; }

    /// <summary>The sysfs directory, e.g. <c>/sys/devices/pci0000:00/0000:00:02.0</c>, or below its bridge's
    /// (<c>/sys/devices/pci0000:00/0000:00:05.0/0000:01:01.0</c>).</summary>
    internal string SysfsPath { get; }

    /// <summary>How many device fds are open (from the group or the cdev); the bus driver's open/close run on the
    /// first open and the last close, as vfio_main.c's open_count does.</summary>
    internal int OpenCount { get; set; }

    /// <summary>True while a cdev fd of the device is bound to an iommufd (<c>VFIO_DEVICE_BIND_IOMMUFD</c>).</summary>
    internal bool BoundThroughCdev { get; set; }

    /// <summary>The device was surprise-removed (<see cref="SimulatedKernel.RemoveDevice"/>): its fds fail with
    /// <c>ENODEV</c>, mapped registers read all-ones, it does no DMA, and it is gone from sysfs and /dev.</summary>
    internal bool Removed { get; set; }

    /// <summary>The DMA translation the device currently sees, or null when it is in no IOMMU domain (DMA is blocked).</summary>
    internal IDmaSpace? Dma { get; set; }

    /// <summary>Device DMA: reads memory at <paramref name="iova"/> through the IOMMU; a blocked access is recorded as
    /// a <see cref="DmaFault"/> and leaves <paramref name="destination"/> untouched.</summary>
    internal bool DmaRead(ulong iova, Span<byte> destination) => Kernel.DeviceDma(this, iova, destination, default, write: false);

    /// <summary>Device DMA: writes memory at <paramref name="iova"/> through the IOMMU; a blocked access is recorded and
    /// writes nothing.</summary>
    internal bool DmaWrite(ulong iova, ReadOnlySpan<byte> source) => Kernel.DeviceDma(this, iova, default, source, write: true);
}
