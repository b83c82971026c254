// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A platform device model (e.g. a virtio-mmio transport) served by the simulated vfio-platform driver
/// (drivers/vfio/platform): its MMIO regions, interrupt lines, register callbacks, and the means to raise
/// interrupts and do DMA.
/// </summary>
/// <remarks>Every callback runs under the simulated kernel's lock, as does work queued with <see cref="Schedule"/>.
/// A model instance belongs to one simulated machine.</remarks>
public abstract class EmulatedPlatformDevice : EmulatedDevice
{
    private VfioPlatformDriver? _driver;

    /// <summary>Creates the model.</summary>
    protected EmulatedPlatformDevice()
    {
    }

    /// <summary>The MMIO regions, in resource order.</summary>
    public abstract IReadOnlyList<PlatformRegion> Regions { get; }

    /// <summary>The interrupt lines, in resource order.</summary>
    public abstract IReadOnlyList<PlatformIrq> Irqs { get; }

    /// <summary>A reset handler exists (ACPI <c>_RST</c> or a reset module): <c>VFIO_DEVICE_FLAGS_RESET</c>.</summary>
    public virtual bool SupportsReset => false;

    /// <summary>Reads a register: <paramref name="width"/> is 1, 2 or 4 (vfio-platform splits accesses so).</summary>
    /// <param name="region">The region index.</param>
    /// <param name="offset">The offset in the region.</param>
    /// <param name="width">The access width in bytes.</param>
    /// <returns>The value, in the low <paramref name="width"/> bytes.</returns>
    protected abstract ulong ReadRegister(int region, ulong offset, int width);

    /// <summary>Writes a register: <paramref name="width"/> is 1, 2 or 4.</summary>
    /// <param name="region">The region index.</param>
    /// <param name="offset">The offset in the region.</param>
    /// <param name="width">The access width in bytes.</param>
    /// <param name="value">The value, in the low <paramref name="width"/> bytes.</param>
    protected abstract void WriteRegister(int region, ulong offset, int width, ulong value);

    /// <summary>The reset handler: return the device to its power-on state.</summary>
    protected virtual void OnReset()
    {
    }

    /// <summary>Drives interrupt line <paramref name="irq"/>. A level line signals its eventfd while asserted and
    /// unmasked, then stays masked until user space unmasks it; an edge line signals on each assertion.</summary>
    /// <param name="irq">The line's index.</param>
    /// <param name="asserted">The line's new level.</param>
    protected void SetIrq(int irq, bool asserted) => _driver?.SetLine(irq, asserted);

    /// <summary>Device DMA from memory through the IOMMU (or the identity map of no-IOMMU mode); a blocked access is
    /// recorded by the simulated kernel as a <see cref="DmaFault"/>.</summary>
    /// <param name="address">The bus address.</param>
    /// <param name="destination">Where the bytes go.</param>
    /// <returns>True when the bytes were read.</returns>
    protected bool DmaRead(ulong address, Span<byte> destination) => _driver is not null && _driver.BoundDevice.DmaRead(address, destination);

    /// <summary>Device DMA to memory (see <see cref="DmaRead"/>).</summary>
    /// <param name="address">The bus address.</param>
    /// <param name="source">The bytes to write.</param>
    /// <returns>True when the bytes were written.</returns>
    protected bool DmaWrite(ulong address, ReadOnlySpan<byte> source) => _driver is not null && _driver.BoundDevice.DmaWrite(address, source);

    /// <summary>Runs <paramref name="work"/> after <paramref name="delay"/> under the simulated kernel's lock.</summary>
    /// <param name="delay">How long the device takes.</param>
    /// <param name="work">The work.</param>
    protected void Schedule(TimeSpan delay, Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        VfioPlatformDriver driver = _driver ?? throw new InvalidOperationException("The model is not part of a simulated machine.");
        DeviceWork.Schedule(driver.BoundDevice.Kernel, delay, work);
    }

    internal override VfioBusDriver CreateVfioDriver()
    {
        if (_driver is not null)
        {
            throw new InvalidOperationException("A device model belongs to one simulated machine.");
        }
        _driver = new VfioPlatformDriver(this);
        return _driver;
    }

    internal ulong HardwareRead(int region, ulong offset, int width) => ReadRegister(region, offset, width);

    internal void HardwareWrite(int region, ulong offset, int width, ulong value) => WriteRegister(region, offset, width, value);

    internal void HardwareReset() => OnReset();
}
