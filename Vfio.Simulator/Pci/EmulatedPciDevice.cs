// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A PCI device model served by the simulated vfio-pci driver: its config-space identity, BARs, interrupt
/// capabilities, register callbacks, and the means to raise interrupts and do DMA.
/// </summary>
/// <remarks>
/// <para>
/// The simulated vfio-pci core builds the device's config space from these properties (IDs, class, BARs with
/// sizing, the MSI / PCI Express / MSI-X capabilities, interrupt pin) and virtualizes it as the kernel does
/// (vfio_config_do_rw). BAR accesses through <c>pread</c>/<c>pwrite</c> are split into naturally aligned
/// 8/4/2/1-byte accesses and reach <see cref="ReadBar"/>/<see cref="WriteBar"/>, as do accesses through an mmap of
/// the BAR.
/// </para>
/// <para>
/// Every callback runs under the simulated kernel's lock, and so does work queued with <see cref="Schedule"/>: a
/// model never races with an ioctl. A model instance belongs to one simulated machine.
/// </para>
/// </remarks>
public abstract class EmulatedPciDevice : EmulatedDevice
{
    private VfioPciDriver? _driver;
    private IReadOnlyDictionary<string, string>? _attributes;

    /// <summary>Creates the model.</summary>
    protected EmulatedPciDevice()
    {
    }

    /// <summary>The PCI vendor ID.</summary>
    public abstract ushort VendorId { get; }

    /// <summary>The PCI device ID.</summary>
    public abstract ushort DeviceId { get; }

    /// <summary>The 24-bit class code (base class, subclass, programming interface), e.g. <c>0x00ff00</c>.</summary>
    public abstract uint ClassCode { get; }

    /// <summary>The revision ID.</summary>
    public virtual byte RevisionId => 0;

    /// <summary>The subsystem vendor ID (QEMU's default is 0x1af4).</summary>
    public virtual ushort SubsystemVendorId => 0x1af4;

    /// <summary>The subsystem ID (QEMU's default is 0x1100).</summary>
    public virtual ushort SubsystemId => 0x1100;

    /// <summary>The six BAR slots; null for an unimplemented BAR and for the upper half of a 64-bit BAR.</summary>
    public abstract IReadOnlyList<PciBar?> Bars { get; }

    /// <summary>The number of MSI vectors (1, 2, 4, ... 32), or 0 for no MSI capability.</summary>
    public virtual int MsiVectors => 0;

    /// <summary>The MSI-X table size, or 0 for no MSI-X capability.</summary>
    public virtual int MsixVectors => 0;

    /// <summary>The BAR holding the MSI-X table and PBA.</summary>
    public virtual int MsixBar => 0;

    /// <summary>The offset of the MSI-X table in <see cref="MsixBar"/> (8-byte aligned).</summary>
    public virtual uint MsixTableOffset => 0;

    /// <summary>The offset of the MSI-X pending-bit array in <see cref="MsixBar"/> (8-byte aligned).</summary>
    public virtual uint MsixPbaOffset => 0x800;

    /// <summary>How many MSI/MSI-X vectors the host can allocate for the device; when user space asks for more,
    /// SET_IRQS enables nothing and returns this number (the positive-count quirk of vfio_pci_set_irqs_ioctl).</summary>
    public virtual int HostVectorLimit => int.MaxValue;

    /// <summary>Whether the host allocates MSI-X vectors on demand (dynamic MSI-X, as x86 does): MSI-X then has no
    /// NORESIZE flag and vectors beyond those enabled can be wired while MSI-X is enabled; otherwise such a vector is
    /// <c>EINVAL</c> until MSI-X is disabled and enabled with more.</summary>
    public virtual bool DynamicMsix => true;

    /// <summary>The INTx pin: 1–4 for INTA–INTD, or 0 for no INTx.</summary>
    public virtual byte InterruptPin => 1;

    /// <summary>A PCI Express device: 4 KiB config space, a PCIe capability, and the ERR interrupt index.</summary>
    public virtual bool IsPciExpress => false;

    /// <summary>The device has a function-level reset (FLR), so <c>VFIO_DEVICE_RESET</c> works. Without one, vfio-pci
    /// still resets a device that sits alone on a non-root bus (the "bus" reset method, pci_parent_bus_reset).</summary>
    public virtual bool SupportsFunctionReset => false;

    /// <summary>The expansion ROM image (QEMU's <c>romfile=</c>), or null for none. vfio-pci reports the ROM region only
    /// when the image starts with the <c>0x55 0xAA</c> signature (pci_map_rom); its size is the ROM BAR's, the image
    /// rounded up to a power of two.</summary>
    public byte[]? OptionRom { get; init; }

    /// <summary>False to model a kernel before MSIX_MAPPABLE (Linux 4.15 and older): GET_REGION_INFO of the MSI-X BAR
    /// carries no MSIX_MAPPABLE capability and mmap of the pages holding the MSI-X table and PBA fails with EINVAL.</summary>
    public bool MsixMappable { get; init; } = true;

    /// <summary>The sysfs attributes: <c>vendor</c>, <c>device</c>, <c>class</c>, <c>revision</c>,
    /// <c>subsystem_vendor</c>, <c>subsystem_device</c> (e.g. <c>0x1234</c>, <c>0x00ff00</c>).</summary>
    public override IReadOnlyDictionary<string, string> SysfsAttributes => _attributes ??=
        new SimulatedPciIdentity(VendorId, DeviceId, ClassCode, RevisionId, SubsystemVendorId, SubsystemId).ToSysfsAttributes();

    /// <summary>Bus mastering is enabled (COMMAND bit 2): without it the device can neither DMA nor send MSIs.</summary>
    protected bool BusMasterEnabled => _driver?.BusMaster ?? false;

    /// <summary>MSI is enabled (user space enabled it with SET_IRQS).</summary>
    protected bool MsiEnabled => _driver?.MsiActive ?? false;

    /// <summary>MSI-X is enabled (user space enabled it with SET_IRQS).</summary>
    protected bool MsixEnabled => _driver?.MsixActive ?? false;

    /// <summary>Reads a register of a BAR: <paramref name="width"/> is 1, 2, 4 or 8 and the access is naturally aligned.</summary>
    /// <param name="bar">The BAR index.</param>
    /// <param name="offset">The offset in the BAR.</param>
    /// <param name="width">The access width in bytes.</param>
    /// <returns>The value, in the low <paramref name="width"/> bytes.</returns>
    protected abstract ulong ReadBar(int bar, ulong offset, int width);

    /// <summary>Writes a register of a BAR: <paramref name="width"/> is 1, 2, 4 or 8 and the access is naturally aligned.</summary>
    /// <param name="bar">The BAR index.</param>
    /// <param name="offset">The offset in the BAR.</param>
    /// <param name="width">The access width in bytes.</param>
    /// <param name="value">The value, in the low <paramref name="width"/> bytes.</param>
    protected abstract void WriteBar(int bar, ulong offset, int width, ulong value);

    /// <summary>A function reset: return the device to its power-on state.</summary>
    protected virtual void OnReset()
    {
    }

    /// <summary>Drives the INTx line (level-triggered): while asserted and INTx is enabled and unmasked, vfio-pci
    /// masks the line and signals the INTx eventfd once; user space must UNMASK to get the next one.</summary>
    /// <param name="asserted">The line's new level.</param>
    protected void SetIntx(bool asserted) => _driver?.SetIntxLevel(asserted);

    /// <summary>Sends MSI <paramref name="vector"/>: signals its eventfd when MSI is enabled, the vector is wired and
    /// bus mastering is on; otherwise the message is lost, as on hardware.</summary>
    /// <param name="vector">The vector number.</param>
    protected void NotifyMsi(int vector) => _driver?.NotifyMessage(msix: false, vector);

    /// <summary>Sends MSI-X <paramref name="vector"/> under the same conditions as <see cref="NotifyMsi"/>.</summary>
    /// <param name="vector">The vector number.</param>
    protected void NotifyMsix(int vector) => _driver?.NotifyMessage(msix: true, vector);

    /// <summary>Device DMA from memory through the IOMMU. Fails (touching nothing) without bus mastering, or when the
    /// IOMMU blocks it — the simulated kernel then records a <see cref="DmaFault"/>.</summary>
    /// <param name="address">The bus address (IOVA).</param>
    /// <param name="destination">Where the bytes go.</param>
    /// <returns>True when the bytes were read.</returns>
    protected bool DmaRead(ulong address, Span<byte> destination)
        => _driver is not null && _driver.BusMaster && _driver.BoundDevice.DmaRead(address, destination);

    /// <summary>Device DMA to memory through the IOMMU (see <see cref="DmaRead"/>).</summary>
    /// <param name="address">The bus address (IOVA).</param>
    /// <param name="source">The bytes to write.</param>
    /// <returns>True when the bytes were written.</returns>
    protected bool DmaWrite(ulong address, ReadOnlySpan<byte> source)
        => _driver is not null && _driver.BusMaster && _driver.BoundDevice.DmaWrite(address, source);

    /// <summary>Runs <paramref name="work"/> after <paramref name="delay"/> under the simulated kernel's lock (device
    /// work that completes later, e.g. a DMA engine). Dropped if the machine is disposed first.</summary>
    /// <param name="delay">How long the device takes.</param>
    /// <param name="work">The work.</param>
    protected void Schedule(TimeSpan delay, Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        VfioPciDriver driver = _driver ?? throw new InvalidOperationException("The model is not part of a simulated machine.");
        DeviceWork.Schedule(driver.BoundDevice.Kernel, delay, work);
    }

    internal override VfioBusDriver CreateVfioDriver()
    {
        if (_driver is not null)
        {
            throw new InvalidOperationException("A device model belongs to one simulated machine.");
        }
        _driver = new VfioPciDriver(this);
        return _driver;
    }

    internal ulong HardwareRead(int bar, ulong offset, int width) => ReadBar(bar, offset, width);

    internal void HardwareWrite(int bar, ulong offset, int width, ulong value) => WriteBar(bar, offset, width, value);

    internal void HardwareReset() => OnReset();
}
