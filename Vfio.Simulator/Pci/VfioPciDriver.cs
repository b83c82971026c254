// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The simulated vfio-pci core serving an <see cref="EmulatedPciDevice"/> (drivers/vfio/vfio_main.c, drivers/vfio/pci): regions at
/// <c>index &lt;&lt; 40</c>, BAR access and mmap, the virtualized config space, INTx/MSI/MSI-X/ERR/REQ interrupts
/// function reset, PCI hot reset and ioeventfds.
/// </summary>
internal sealed partial class VfioPciDriver(EmulatedPciDevice model) : VfioCoreDriver
{
    private const uint NumRegions = 9;
    private const uint NumIrqs = 5;
    private const int EIO = (int)Errno.EIO;

    private enum IrqType
    {
        None,
        Intx,
        Msi,
        Msix,
    }

    private readonly EmulatedPciDevice _model = model;

    // Interrupt state (vdev->irq_type, the INTx context, the MSI/MSI-X contexts, ERR/REQ triggers).
    private IrqType _irqType;
    private SimEventFd? _intxTrigger;
    private VirqFd? _intxUnmaskFd;
    private bool _intxMasked;
    private bool _intxLevel;
    private bool _virqDisabled;
    private SimEventFd?[] _vectors = [];
    private bool[] _msixPending = [];
    private int _allocated;
    private int _msiQmax;
    private SimEventFd? _errTrigger;
    private SimEventFd? _reqTrigger;

    // Runtime PM (LOW_POWER_ENTRY features).
    private bool _pmEngaged;
    private SimEventFd? _pmWake;

    internal override string DriverName => "vfio-pci";

    internal bool BusMaster => _config is not null && (Command & PciCommandMaster) != 0;

    internal bool MsiActive => _irqType == IrqType.Msi;

    internal bool MsixActive => _irqType == IrqType.Msix;

    private bool MemoryEnabled => _config is not null && (Command & PciCommandMemory) != 0;

    internal override void OpenDevice() => InitConfig();

    /// <summary>vfio_pci_core_request: signals the REQ IRQ eventfd once per call (the kernel's repeat pacing is not
    /// modelled).</summary>
    internal override bool RequestRelease()
    {
        _reqTrigger?.Signal();
        return _reqTrigger is not null;
    }

    internal override void CloseDevice()
    {
        // vfio_pci_core_disable: interrupts off, ERR/REQ released, bus master cleared, function reset if possible.
        DisableInterrupts();
        ReleaseIoEventFds();
        Replace(ref _errTrigger, null);
        Replace(ref _reqTrigger, null);
        _pmEngaged = false;
        Replace(ref _pmWake, null);
        if (ResetWorks)
        {
            _model.HardwareReset();
        }
        _config = null;
        _virqDisabled = false;
        _msiQmax = 0;
    }

    protected override int DriverIoctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_DEVICE_GET_INFO)
        {
            return GetInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_REGION_INFO)
        {
            return GetRegionInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_IRQ_INFO)
        {
            return GetIrqInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_SET_IRQS)
        {
            return SetIrqs(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_RESET)
        {
            return Reset();
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)
        {
            return GetHotResetInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_PCI_HOT_RESET)
        {
            return HotReset(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_IOEVENTFD)
        {
            return IoEventFdIoctl(argument);
        }
        return -ENOTTY;
    }

    // ---- GET_INFO (vfio_pci_ioctl_get_info) ----------------------------------------------------------------------------------------

    private int GetInfo(nint argument)
    {
        const int Minsz = 16;
        if (UserMemory.Read(argument, Minsz, out vfio_device_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz)
        {
            return -EINVAL;
        }
        info.flags = VfioUapi.VFIO_DEVICE_FLAGS_PCI | (ResetWorks ? VfioUapi.VFIO_DEVICE_FLAGS_RESET : 0);
        info.num_regions = NumRegions;
        info.num_irqs = NumIrqs;
        info.cap_offset = 0;
        info.pad = 0;
        return UserMemory.Write(argument, (int)Math.Min(info.argsz, 24u), in info) < 0 ? -EFAULT : 0;
    }

    // ---- GET_REGION_INFO (vfio_pci_ioctl_get_region_info) -----------------------------------------------------------------------------

    private int GetRegionInfo(nint argument)
    {
        const int Minsz = 32;
        if (UserMemory.Read(argument, Minsz, out vfio_region_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz)
        {
            return -EINVAL;
        }
        byte[] caps = [];
        switch (info.index)
        {
            case VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX:
                info.offset = (ulong)info.index << OffsetShift;
                info.size = ConfigSize;
                info.flags = VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE;
                break;
            case <= VfioUapi.VFIO_PCI_BAR5_REGION_INDEX:
            {
                info.offset = (ulong)info.index << OffsetShift;
                PciBar? bar = BarAt((int)info.index);
                if (bar is null)
                {
                    info.size = 0;
                    info.flags = 0;
                    break;
                }
                info.size = bar.Size;
                info.flags = VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE;
                if (bar.Mappable)
                {
                    info.flags |= VfioUapi.VFIO_REGION_INFO_FLAG_MMAP;
                    caps = BarCaps((int)info.index, bar);
                }
                break;
            }
            case VfioUapi.VFIO_PCI_ROM_REGION_INDEX:
                // The ROM BAR's size when pci_map_rom finds a valid image, else size 0 and no flags.
                info.offset = (ulong)info.index << OffsetShift;
                info.size = RomBarSize;
                info.flags = RomBarSize != 0 ? VfioUapi.VFIO_REGION_INFO_FLAG_READ : 0;
                break;
            default:
                // VGA (8): no simulated device is VGA-class (the real kernel gives EINVAL for edu); no device-specific regions.
                return -EINVAL;
        }
        info.cap_offset = 0;
        if (caps.Length > 0)
        {
            info.flags |= VfioUapi.VFIO_REGION_INFO_FLAG_CAPS;
            if (info.argsz < Minsz + caps.Length)
            {
                info.argsz = (uint)(Minsz + caps.Length);
            }
            else
            {
                if (WriteCaps(argument, Minsz, info.argsz, caps) < 0)
                {
                    return -EFAULT;
                }
                info.cap_offset = Minsz;
            }
        }
        return UserMemory.Write(argument, Minsz, in info) < 0 ? -EFAULT : 0;
    }

    /// <summary>The capability chain of a mappable BAR: the variant-driver SPARSE_MMAP cap if the model declares
    /// areas, then MSIX_MAPPABLE on the MSI-X BAR; offsets relative to the info struct (starting at 32).</summary>
    private byte[] BarCaps(int index, PciBar bar)
    {
        bool msix = _model.MsixVectors > 0 && _model.MsixBar == index && _model.MsixMappable;
        int sparseSize = bar.SparseMmapAreas is { } areas ? 16 + (16 * areas.Count) : 0;
        byte[] caps = new byte[sparseSize + (msix ? 8 : 0)];
        if (caps.Length == 0)
        {
            return caps;
        }
        int at = 0;
        if (bar.SparseMmapAreas is { } list)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(caps, VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP);
            BinaryPrimitives.WriteUInt16LittleEndian(caps.AsSpan(2), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(caps.AsSpan(4), msix ? (uint)(32 + sparseSize) : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(caps.AsSpan(8), (uint)list.Count);
            for (int i = 0; i < list.Count; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(16 + (16 * i)), list[i].Offset);
                BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(24 + (16 * i)), list[i].Size);
            }
            at = sparseSize;
        }
        if (msix)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(caps.AsSpan(at), VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
            BinaryPrimitives.WriteUInt16LittleEndian(caps.AsSpan(at + 2), 1);
        }
        return caps;
    }

    // ---- GET_IRQ_INFO (vfio_pci_ioctl_get_irq_info) -------------------------------------------------------------------------------------------

    private int GetIrqInfo(nint argument)
    {
        const int Minsz = 16;
        if (UserMemory.Read(argument, Minsz, out vfio_irq_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz || info.index >= NumIrqs)
        {
            return -EINVAL;
        }
        if (info.index == VfioUapi.VFIO_PCI_ERR_IRQ_INDEX && !_model.IsPciExpress)
        {
            return -EINVAL;
        }
        info.flags = VfioUapi.VFIO_IRQ_INFO_EVENTFD;
        info.count = IrqCount(info.index);
        if (info.index == VfioUapi.VFIO_PCI_INTX_IRQ_INDEX)
        {
            info.flags |= VfioUapi.VFIO_IRQ_INFO_MASKABLE | VfioUapi.VFIO_IRQ_INFO_AUTOMASKED;
        }
        else if (info.index != VfioUapi.VFIO_PCI_MSIX_IRQ_INDEX || !_model.DynamicMsix)
        {
            // x86 supports dynamic MSI-X allocation (vdev->has_dyn_msix), so only MSI-X lacks NORESIZE there.
            info.flags |= VfioUapi.VFIO_IRQ_INFO_NORESIZE;
        }
        return UserMemory.Write(argument, Minsz, in info) < 0 ? -EFAULT : 0;
    }

    /// <summary>vfio_pci_get_irq_count.</summary>
    private uint IrqCount(uint index) => index switch
    {
        VfioUapi.VFIO_PCI_INTX_IRQ_INDEX => _model.InterruptPin != 0 ? 1u : 0u,
        VfioUapi.VFIO_PCI_MSI_IRQ_INDEX => (uint)_model.MsiVectors,
        VfioUapi.VFIO_PCI_MSIX_IRQ_INDEX => (uint)_model.MsixVectors,
        VfioUapi.VFIO_PCI_ERR_IRQ_INDEX => _model.IsPciExpress ? 1u : 0u,
        VfioUapi.VFIO_PCI_REQ_IRQ_INDEX => 1u,
        _ => 0u,
    };

    // ---- RESET (vfio_pci_ioctl_reset) ----------------------------------------------------------------------------------------------------

    private int Reset()
    {
        if (!ResetWorks)
        {
            return -EINVAL;
        }
        // Config space is saved and restored around the FLR (or the bus reset of a function alone on its bus); the
        // device's own state is reset.
        _model.HardwareReset();
        _intxLevel = false;
        return 0;
    }

    // ---- features: vfio-pci's device_feature op (vfio_pci_core_ioctl_feature) ----------------------------------------------------------------------

    protected override int DeviceFeature(uint flags, nint data, uint dataSize)
    {
        switch (flags & VfioUapi.VFIO_DEVICE_FEATURE_MASK)
        {
            case 3: // LOW_POWER_ENTRY
            {
                int rc = CheckFeature(flags, dataSize, VfioUapi.VFIO_DEVICE_FEATURE_SET, 0);
                return rc != 1 ? rc : PmEntry(null);
            }
            case 4: // LOW_POWER_ENTRY_WITH_WAKEUP
            {
                int rc = CheckFeature(flags, dataSize, VfioUapi.VFIO_DEVICE_FEATURE_SET, 8);
                if (rc != 1)
                {
                    return rc;
                }
                if (UserMemory.Read(data, 4, out int wakeup) < 0)
                {
                    return -EFAULT;
                }
                if (wakeup < 0)
                {
                    return -EINVAL;
                }
#pragma warning disable CA2000 // owned by the runtime-PM state from here on
                rc = SimEventFd.Get(wakeup, out SimEventFd? eventFd);
#pragma warning restore CA2000
                if (rc < 0)
                {
                    return rc;
                }
                rc = PmEntry(eventFd);
                if (rc < 0)
                {
                    eventFd!.Dispose();
                }
                return rc;
            }
            case 5: // LOW_POWER_EXIT
            {
                int rc = CheckFeature(flags, dataSize, VfioUapi.VFIO_DEVICE_FEATURE_SET, 0);
                if (rc != 1)
                {
                    return rc;
                }
                _pmEngaged = false;
                Replace(ref _pmWake, null);
                return 0;
            }
            default:
                // PCI_VF_TOKEN needs an SR-IOV PF; BUS_MASTER is CDX only.
                return -ENOTTY;
        }
    }

    private int PmEntry(SimEventFd? wake)
    {
        if (_pmEngaged)
        {
            return -EINVAL;
        }
        _pmEngaged = true;
        _pmWake = wake;
        return 0;
    }

    // ---- read / write (vfio_pci_rw) ------------------------------------------------------------------------------------------------

    protected override uint RegionCount => NumRegions;

    protected override long RegionReadWrite(int index, Span<byte> buffer, ulong pos, bool write) => (uint)index switch
    {
        VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX => ConfigReadWrite(buffer, pos, write),
        VfioUapi.VFIO_PCI_ROM_REGION_INDEX => write ? -EINVAL : RomRead(buffer, pos),
        VfioUapi.VFIO_PCI_VGA_REGION_INDEX => -EINVAL,
        _ => BarReadWrite(index, buffer, pos, write),
    };

    private long BarReadWrite(int index, Span<byte> buffer, ulong pos, bool write)
    {
        PciBar? bar = BarAt(index);
        if (bar is null || pos >= bar.Size)
        {
            return -EINVAL;
        }
        int count = (int)Math.Min((ulong)buffer.Length, bar.Size - pos);
        if (!bar.IsIo && !MemoryEnabled)
        {
            // vfio_pci_core_do_io_rw tests memory decoding for memory BARs only.
            return -EIO;
        }
        (ulong tableStart, ulong tableEnd) = MsixTableRange(index);
        int done = 0;
        while (done < count)
        {
            ulong at = pos + (ulong)done;
            int left = count - done;
            if (at >= tableStart && at < tableEnd)
            {
                // The MSI-X vector table belongs to the kernel: reads give 0xff, writes are dropped.
                int n = (int)Math.Min((ulong)left, tableEnd - at);
                if (!write)
                {
                    buffer.Slice(done, n).Fill(0xff);
                }
                done += n;
                continue;
            }
            int width = left >= 8 && at % 8 == 0 ? 8 : left >= 4 && at % 4 == 0 ? 4 : left >= 2 && at % 2 == 0 ? 2 : 1;
            while (at < tableStart && at + (ulong)width > tableStart)
            {
                width /= 2;
            }
            Span<byte> piece = buffer.Slice(done, width);
            if (write)
            {
                _model.HardwareWrite(index, at, width, ReadLittleEndian(piece));
            }
            else
            {
                WriteLittleEndian(piece, _model.HardwareRead(index, at, width));
            }
            done += width;
        }
        return count;
    }

    private (ulong Start, ulong End) MsixTableRange(int index)
        => _model.MsixVectors > 0 && _model.MsixBar == index
            ? (_model.MsixTableOffset, _model.MsixTableOffset + (16UL * (ulong)_model.MsixVectors))
            : (ulong.MaxValue, ulong.MaxValue);

    private PciBar? BarAt(int index) => index < _model.Bars.Count ? _model.Bars[index] : null;

    /// <summary>Whether [start, start + length) of BAR <paramref name="index"/> touches a page of the MSI-X table or PBA.</summary>
    private bool OverlapsMsixPages(int index, ulong start, ulong length)
    {
        if (_model.MsixVectors == 0 || _model.MsixBar != index)
        {
            return false;
        }
        ulong vectors = (ulong)_model.MsixVectors;
        foreach ((ulong offset, ulong size) in new[] { ((ulong)_model.MsixTableOffset, 16 * vectors), ((ulong)_model.MsixPbaOffset, ((vectors + 63) / 64) * 8) })
        {
            ulong first = offset & ~(PageSize - 1);
            ulong end = (offset + size + PageSize - 1) & ~(PageSize - 1);
            if (start < end && first < start + length)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>vfio_pci_core_do_io_rw on pci_map_rom: the image, then 0xff to the end of the ROM BAR.</summary>
    private long RomRead(Span<byte> buffer, ulong pos)
    {
        ulong size = RomBarSize;
        if (pos >= size)
        {
            return -EINVAL;
        }
        int count = (int)Math.Min((ulong)buffer.Length, size - pos);
        byte[] image = _model.OptionRom!;
        for (int i = 0; i < count; i++)
        {
            ulong at = pos + (ulong)i;
            buffer[i] = at < (ulong)image.Length ? image[at] : (byte)0xff;
        }
        return count;
    }

    /// <summary>The ROM BAR's size: the image rounded up to a power of two, when it has the ROM signature; else 0.</summary>
    private ulong RomBarSize => _model.OptionRom is { Length: >= 2 } rom && rom[0] == 0x55 && rom[1] == 0xaa
        ? System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)Math.Max(rom.Length, 2048))
        : 0;

    /// <summary>vfio-pci's reset_works: a function reset (FLR, PM), or the "bus" method of a device alone on a
    /// non-root bus (pci_parent_bus_reset).</summary>
    private bool ResetWorks => _model.SupportsFunctionReset || AffectedDevices() is { Count: 1 };

    // ---- mmap (vfio_pci_core_mmap) ------------------------------------------------------------------------------------------------------------

    internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        mapping = null;
        if (length == 0 || (offset & (long)(PageSize - 1)) != 0)
        {
            return -EINVAL; // what mmap(2) itself refuses
        }
        ulong index = (ulong)offset >> OffsetShift;
        ulong start = (ulong)offset & OffsetMask;
        if (index >= NumRegions || index >= VfioUapi.VFIO_PCI_ROM_REGION_INDEX)
        {
            return -EINVAL;
        }
        PciBar? bar = BarAt((int)index);
        if (bar is null || !bar.Mappable)
        {
            return -EINVAL;
        }
        ulong physLength = (bar.Size + PageSize - 1) & ~(PageSize - 1);
        ulong requested = (length + PageSize - 1) & ~(PageSize - 1);
        if (start + requested > physLength || start + requested < start)
        {
            return -EINVAL;
        }
        if (bar.SparseMmapAreas is { } areas && !areas.Any(a => start >= a.Offset && start + requested <= a.Offset + a.Size))
        {
            return -EINVAL;
        }
        if (!_model.MsixMappable && OverlapsMsixPages((int)index, start, requested))
        {
            return -EINVAL; // vfio_pci_mmap before 4.16: the MSI-X table is not mmap-able
        }
        return EmulatedRegionMapping.Create(new BarWindow(this, (int)index), start, length, offset, alignment, out mapping);
    }

    /// <summary>One BAR as seen through an mmap.</summary>
    private sealed class BarWindow(VfioPciDriver driver, int bar) : IMappedRegion
    {
        public SimulatedKernel Kernel => driver.Device.Kernel;

        public ulong ReadMapped(ulong offset, int width) => driver.MappedAccess(bar, offset, width, 0, write: false);

        public void WriteMapped(ulong offset, int width, ulong value) => _ = driver.MappedAccess(bar, offset, width, value, write: true);
    }

    private readonly byte[] _msixTable = new byte[16 * Math.Max(0, model.MsixVectors)];

    private ulong MappedAccess(int bar, ulong offset, int width, ulong value, bool write)
    {
        if (Device.Removed)
        {
            // A removed device no longer decodes its BARs: reads complete with all-ones, writes go nowhere.
            return write ? 0 : ulong.MaxValue >> (64 - (8 * width));
        }
        if (!MemoryEnabled || _pmEngaged)
        {
            throw new InvalidOperationException(
                "SIGBUS: a BAR mapping was accessed while memory decoding is disabled, the device is closed, or it is in low-power mode.");
        }
        PciBar bar0 = BarAt(bar)!;
        if (offset >= bar0.Size)
        {
            // The padding of a sub-page BAR (a reserved dummy page).
            return write ? 0 : ulong.MaxValue >> (64 - (8 * width));
        }
        (ulong tableStart, ulong tableEnd) = MsixTableRange(bar);
        if (offset >= tableStart && offset < tableEnd)
        {
            // MSIX_MAPPABLE: the table is the device's; the host kernel owns the vectors, so writes have no effect on delivery.
            Span<byte> slot = _msixTable.AsSpan((int)(offset - tableStart), width);
            if (write)
            {
                WriteLittleEndian(slot, value);
                return 0;
            }
            return ReadLittleEndian(slot);
        }
        if (write)
        {
            _model.HardwareWrite(bar, offset, width, value);
            return 0;
        }
        return _model.HardwareRead(bar, offset, width);
    }
}
