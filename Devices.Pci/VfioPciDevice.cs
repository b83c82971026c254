// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// A vfio-pci device over an <see cref="AttachedDevice"/>: its configuration space (typed accesses, the command and
/// status registers, the capability lists), BARs, expansion ROM and resets, without knowing which backend attached it.
/// </summary>
/// <remarks>
/// The device stays its backend's: disposing this object releases what it mapped and leaves the device attached and
/// open. The object composes the backend's device (<see cref="Attached"/>, <see cref="Device"/>) rather than deriving
/// from it, so the same code runs on every backend.
/// </remarks>
/// <example>
/// <code>
/// using AttachedDevice attached = backend.AttachDevice(VfioDeviceSource.FromPciAddress("0000:00:02.0"), space);
/// using var pci = new VfioPciDevice(attached);
/// pci.SetBusMaster(true);
/// foreach (PciCapability capability in pci.Capabilities) Console.WriteLine(capability);
/// </code>
/// </example>
public sealed partial class VfioPciDevice : IDisposable
{
    /// <summary>The regions every vfio-pci device has (<c>VFIO_PCI_NUM_REGIONS</c>).</summary>
    internal const int FixedRegionCount = VfioPciRegion.DeviceSpecific;

    /// <summary>The IRQ indexes every vfio-pci device has (<c>VFIO_PCI_NUM_IRQS</c>).</summary>
    internal const int FixedIrqCount = VfioPciIrq.Request + 1;

    private PciCapability[]? _capabilities;
    private volatile bool _disposed;

    /// <summary>Checks that <paramref name="attached"/> is a vfio-pci device and reads its configuration header.</summary>
    /// <param name="attached">A device a backend attached; it stays attached and owned by the caller.</param>
    /// <exception cref="ArgumentException">The device is not a vfio-pci device (e.g. vfio-platform).</exception>
    /// <exception cref="ObjectDisposedException">The device is detached.</exception>
    /// <exception cref="VfioException">The kernel reports fewer regions or IRQ indexes than vfio-pci gives every
    /// device, or a region or config query failed.</exception>
    public VfioPciDevice(AttachedDevice attached)
    {
        ArgumentNullException.ThrowIfNull(attached);
        ObjectDisposedException.ThrowIf(!attached.IsAttached, attached);
        VfioDevice device = attached.Device;
        if (!device.Info.IsPci)
        {
            throw new ArgumentException($"{device.Name} is not a PCI device (flags {device.Info.Flags}): VfioPciDevice needs one bound to vfio-pci; use VfioPlatformDevice for vfio-platform devices.", nameof(attached));
        }
        if (device.Info.RegionCount < FixedRegionCount || device.Info.IrqCount < FixedIrqCount)
        {
            throw new VfioException("VFIO_DEVICE_GET_INFO", device.Name,
                string.Create(CultureInfo.InvariantCulture, $"the kernel reports {device.Info.RegionCount} region(s) and {device.Info.IrqCount} IRQ index(es); every vfio-pci device has at least {FixedRegionCount} and {FixedIrqCount}"),
                "The device's driver is not the vfio-pci this library knows: bind it to vfio-pci (or a vfio-pci variant driver).");
        }
        Attached = attached;
        Device = device;
        ConfigSize = checked((int)Math.Min(device.GetRegion(VfioPciRegion.Config).Size, PciConfigRegister.ExtendedSize));
        if (ConfigSize < PciConfigRegister.StandardSize)
        {
            throw new VfioException("VFIO_DEVICE_GET_REGION_INFO", $"{device.Name} config region",
                string.Create(CultureInfo.InvariantCulture, $"the configuration region has {ConfigSize} bytes, fewer than the {PciConfigRegister.StandardSize} of every PCI function"),
                "The device's driver is not the vfio-pci this library knows: bind it to vfio-pci.");
        }
        Span<byte> header = stackalloc byte[0x40];
        device.ReadRegion(VfioPciRegion.Config, 0, header);
        VendorId = ReadUInt16(header, PciConfigRegister.VendorId);
        DeviceId = ReadUInt16(header, PciConfigRegister.DeviceId);
        RevisionId = header[PciConfigRegister.RevisionId];
        ClassCode = (uint)(header[PciConfigRegister.ClassCode] | (header[PciConfigRegister.ClassCode + 1] << 8) | (header[PciConfigRegister.ClassCode + 2] << 16));
        HeaderType = (byte)(header[PciConfigRegister.HeaderType] & 0x7F);
        IsMultiFunction = (header[PciConfigRegister.HeaderType] & 0x80) != 0;
        SubsystemVendorId = ReadUInt16(header, PciConfigRegister.SubsystemVendorId);
        SubsystemId = ReadUInt16(header, PciConfigRegister.SubsystemId);
        InterruptPin = header[PciConfigRegister.InterruptPin];
    }

    /// <summary>The attached device this object works on (its backend, container and hot-reset proof).</summary>
    public AttachedDevice Attached { get; }

    /// <summary>The open VFIO device: regions, IRQs, the raw reset.</summary>
    public VfioDevice Device { get; }

    /// <summary>The device's name, e.g. <c>0000:00:02.0</c>.</summary>
    public string Name => Device.Name;

    /// <summary>The vendor ID.</summary>
    public ushort VendorId { get; }

    /// <summary>The device ID.</summary>
    public ushort DeviceId { get; }

    /// <summary>The revision ID.</summary>
    public byte RevisionId { get; }

    /// <summary>The class code: base class in bits 23:16, subclass in 15:8, programming interface in 7:0.</summary>
    public uint ClassCode { get; }

    /// <summary>The header layout (bits 6:0 of the header type; vfio-pci binds type 0 functions only).</summary>
    public byte HeaderType { get; }

    /// <summary>Whether the header type's multi-function bit is set.</summary>
    public bool IsMultiFunction { get; }

    /// <summary>The subsystem vendor ID.</summary>
    public ushort SubsystemVendorId { get; }

    /// <summary>The subsystem ID.</summary>
    public ushort SubsystemId { get; }

    /// <summary>The INTx pin: 0 for none, 1–4 for INTA#–INTD#.</summary>
    public byte InterruptPin { get; }

    /// <summary>The size of the configuration space the kernel exposes: 256 bytes, or 4096 for PCI Express.</summary>
    public int ConfigSize { get; }

    /// <summary>Whether the device reports a function reset (<c>VFIO_DEVICE_FLAGS_RESET</c>).</summary>
    public bool SupportsReset => Device.Info.SupportsReset;

    /// <summary>
    /// The capabilities of the standard list, then of the extended list, as <see cref="PciCapabilityWalker"/> finds
    /// them in the configuration space (read once, on first use; vfio-pci's virtual view, which hides some
    /// capabilities of the physical device).
    /// </summary>
    /// <exception cref="PciCapabilityListException">A list is malformed.</exception>
    /// <exception cref="VfioException">Reading the configuration space failed.</exception>
    public IReadOnlyList<PciCapability> Capabilities
    {
        get
        {
            if (Volatile.Read(ref _capabilities) is { } known)
            {
                return known;
            }
            byte[] config = new byte[ConfigSize];
            ReadConfig(0, config);
            PciCapability[] walked = PciCapabilityWalker.Walk(config, Name);
            return Interlocked.CompareExchange(ref _capabilities, walked, null) ?? walked;
        }
    }

    /// <summary>Finds the standard capability <paramref name="id"/> (the first in list order).</summary>
    /// <param name="id">The capability id.</param>
    /// <returns>The capability, or null when the device has none.</returns>
    /// <exception cref="PciCapabilityListException">The list is malformed.</exception>
    public PciCapability? FindCapability(PciCapabilityId id)
    {
        foreach (PciCapability capability in Capabilities)
        {
            if (capability.Is(id))
            {
                return capability;
            }
        }
        return null;
    }

    /// <summary>Finds the extended capability <paramref name="id"/> (the first in list order).</summary>
    /// <param name="id">The capability id.</param>
    /// <returns>The capability, or null when the device has none.</returns>
    /// <exception cref="PciCapabilityListException">The list is malformed.</exception>
    public PciCapability? FindCapability(PciExtendedCapabilityId id)
    {
        foreach (PciCapability capability in Capabilities)
        {
            if (capability.Is(id))
            {
                return capability;
            }
        }
        return null;
    }

    /// <summary>Where the MSI-X table and pending-bit array are, when the device has an MSI-X capability.</summary>
    /// <exception cref="PciCapabilityListException">The capability list is malformed.</exception>
    /// <exception cref="VfioException">The capability names a BAR that cannot exist, or reading it failed.</exception>
    public PciMsixLayout? MsixLayout
    {
        get
        {
            if (FindCapability(PciCapabilityId.MsiX) is not { } msix)
            {
                return null;
            }
            return PciMsixLayout.Decode(msix.Offset, ReadConfig16(msix.Offset + PciMsixLayout.ControlRegister),
                ReadConfig32(msix.Offset + PciMsixLayout.TableRegister), ReadConfig32(msix.Offset + PciMsixLayout.PbaRegister), Name);
        }
    }

    /// <summary>Releases what this object mapped; the device stays attached and open.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        DisposeInterrupts();
        DisposeBars();
    }

    /// <inheritdoc/>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"PCI device {Name} [{VendorId:x4}:{DeviceId:x4}] class {ClassCode:x6}");

    internal bool IsDisposed => _disposed;

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Hook for the interrupt part of this class: disables what it enabled; runs once, before the BARs are
    /// unmapped.</summary>
    partial void DisposeInterrupts();

    private static ushort ReadUInt16(ReadOnlySpan<byte> bytes, int offset) => (ushort)(bytes[offset] | (bytes[offset + 1] << 8));
}
