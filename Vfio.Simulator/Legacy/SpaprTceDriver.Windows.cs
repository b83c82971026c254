// SPDX-License-Identifier: MIT
using System.Numerics;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class SpaprTceDriver
{
    // ---- v2 pre-registration -----------------------------------------------------------------------------------------

    private int ReadRegistration(nint argument, out vfio_iommu_spapr_register_memory param)
    {
        if (UserMemory.Read(argument, 24, out param) < 0)
        {
            return -EFAULT;
        }
        if (param.argsz < 24 || param.flags != 0)
        {
            return -EINVAL;
        }
        // Page-aligned and not wrapping (a size of 0 passes here: REGISTER refuses it with ENOMEM, UNREGISTER finds nothing).
        if ((param.vaddr & (PageSize - 1)) != 0 || (param.size & (PageSize - 1)) != 0 || param.vaddr + param.size < param.vaddr)
        {
            return -EINVAL;
        }
        return 0;
    }

    private int Register(nint argument)
    {
        _mmSet = true;
        int rc = ReadRegistration(argument, out vfio_iommu_spapr_register_memory param);
        if (rc < 0)
        {
            return rc;
        }
        List<SpaprMemoryRegion> all = _kernel.SpaprPreregistered;
        SpaprMemoryRegion? region = all.Find(r => r.Ua == param.vaddr && r.Size == param.size);
        if (region is not null)
        {
            if (_prereg.Contains(region))
            {
                return -(int)Errno.EBUSY;
            }
            region.Used++; // the same region of another container of this process is shared
        }
        else
        {
            // mm_iommu_do_alloc, in its order: account, allocate the page array (vzalloc(0) fails: a size of 0 is
            // ENOMEM, as probed), pin (the first page never pins), then refuse an overlap with another region.
            ulong pages = param.size >> PageShift;
            if (!_kernel.TryChargeLockedVm(pages))
            {
                return -(int)Errno.ENOMEM;
            }
            rc = param.size == 0 ? -(int)Errno.ENOMEM
                : param.vaddr < PageSize ? -EFAULT
                : all.Exists(r => r.Ua < param.vaddr + param.size && param.vaddr < r.Ua + r.Size) ? -EINVAL
                : 0;
            if (rc < 0)
            {
                _kernel.UnchargeLockedVm(pages);
                return rc;
            }
            region = new SpaprMemoryRegion(param.vaddr, param.size) { Used = 1 };
            all.Add(region);
        }
        _prereg.Add(region);
        _enabled = true;
        return 0;
    }

    private int Unregister(nint argument)
    {
        if (!_mmSet)
        {
            return -EPERM;
        }
        int rc = ReadRegistration(argument, out vfio_iommu_spapr_register_memory param);
        if (rc < 0)
        {
            return rc;
        }
        SpaprMemoryRegion? region = _prereg.Find(r => r.Ua == param.vaddr && r.Size == param.size);
        if (region is null)
        {
            return -(int)Errno.ENOENT; // not registered, or only by another container
        }
        _prereg.Remove(region);
        PutRegion(region);
        // With TCEs still pointing into it the region stays pinned until they go; 6.12 still returns 0.
        return 0;
    }

    /// <summary>mm_iommu_put: the last user frees (unpins and uncharges) the region once no TCE uses it.</summary>
    private void PutRegion(SpaprMemoryRegion region)
    {
        region.Used--;
        FreeUnusedRegions();
    }

    private void FreeUnusedRegions()
    {
        foreach (SpaprMemoryRegion region in _kernel.SpaprPreregistered.Where(r => r.Used <= 0 && r.Mapped <= 0).ToList())
        {
            _kernel.SpaprPreregistered.Remove(region);
            _kernel.UnchargeLockedVm(region.Size >> PageShift);
        }
    }

    // ---- v2 windows --------------------------------------------------------------------------------------------------

    /// <summary>The platform's get_table_size: pseries' spapr_tce_get_table_size (one 8-byte TCE per page, ~0U for
    /// more than one level) or PowerNV's <see cref="TableSize"/>.</summary>
    private ulong PlatformTableSize(int pageShift, ulong windowSize, uint levels)
    {
        if (!_pseries)
        {
            return levels > _kernel.Topology.SpaprMaxLevels ? 0 : TableSize(pageShift, windowSize, levels);
        }
        return levels > 1 ? uint.MaxValue : windowSize >> (pageShift - 3);
    }

    /// <summary>pnv_pci_ioda2_get_table_size: bytes of the TCE table (hardware table plus the user-address copy), or 0
    /// when the geometry is invalid.</summary>
    internal static ulong TableSize(int pageShift, ulong windowSize, uint levels)
    {
        if (levels == 0 || levels > MaxLevels || !BitOperations.IsPow2(windowSize))
        {
            return 0;
        }
        int windowShift = BitOperations.Log2(windowSize);
        if (windowShift < pageShift)
        {
            return 0;
        }
        int entriesShift = windowShift - pageShift;
        ulong tceTableSize = Math.Max(0x1000UL, 1UL << (entriesShift + 3));
        int directShift = Math.Max(((entriesShift + (int)levels - 1) / (int)levels) + 3, PageShift);
        ulong direct = 1UL << directShift;
        ulong bytes = 0;
        for (uint level = levels; level > 0; level--)
        {
            bytes += (tceTableSize + direct - 1) & ~(direct - 1);
            tceTableSize = Math.Max((tceTableSize / direct) << 3, direct);
        }
        return bytes + bytes;
    }

    /// <summary>tce_iommu_create_window: the first free slot, its bus address chosen by the platform.</summary>
    private int CreateWindow(int pageShift, ulong windowSize, uint levels, out ulong start)
    {
        start = 0;
        int slot = Array.IndexOf(_tables, null);
        if (slot < 0)
        {
            return -(int)Errno.ENOSPC;
        }
        if (pageShift >= 64 || (_kernel.Topology.SpaprPageSizes & (1UL << pageShift)) == 0)
        {
            return -EINVAL;
        }
        ulong tableSize = PlatformTableSize(pageShift, windowSize, levels);
        if (tableSize == 0)
        {
            return -EINVAL;
        }
        ulong charged = tableSize >> PageShift;
        if (!_kernel.TryChargeLockedVm(charged))
        {
            return -(int)Errno.ENOMEM;
        }
        int rc = _pseries ? PSeriesCreateTable(slot, pageShift, windowSize, levels, out start) : PowerNvCreateTable(slot, windowSize, out start);
        if (rc < 0)
        {
            _kernel.UnchargeLockedVm(charged);
            return rc;
        }
        _tables[slot] = new TceTable(start, pageShift, windowSize, charged);
        return 0;
    }

    /// <summary>PowerNV's create_table: a window larger than memory is refused; slot 0 is at bus address 0, slot 1 at
    /// 1&lt;&lt;59.</summary>
    private static int PowerNvCreateTable(int slot, ulong windowSize, out ulong start)
    {
        start = slot == 0 ? 0 : SecondWindowStart;
        return windowSize > MaxWindowSize ? -EINVAL : 0;
    }

    /// <summary>
    /// pseries' spapr_tce_create_table, with the QEMU hypervisor's answers as probed: a power-of-two size and at most
    /// one level; a PE whose 64-bit window creation failed is refused with ENODEV until reboot; slot 0 with 4 KiB
    /// pages and at most the 32-bit window's size re-creates the default window at bus address 0 (EPERM while the
    /// 64-bit window exists); every other request is the hypervisor's one 64-bit window at 1&lt;&lt;59 (EPERM in slot 0
    /// while it exists; when it exists in slot 0, the hypervisor refuses another: ENODEV, and the PE is marked failed).
    /// </summary>
    private int PSeriesCreateTable(int slot, int pageShift, ulong windowSize, uint levels, out ulong start)
    {
        start = 0;
        if (!BitOperations.IsPow2(windowSize) || levels > 1)
        {
            return -EINVAL;
        }
        HashSet<SimGroup> failed = _kernel.SpaprFailedDdw;
        SimGroup pe = _groups[0];
        if (failed.Contains(pe))
        {
            return -(int)Errno.ENODEV;
        }
        bool ddwExists = _tables.Any(t => t is not null && t.Start == SecondWindowStart);
        if (slot == 0 && (ddwExists || (pageShift == PageShift && windowSize <= _dma32Size)))
        {
            return ddwExists ? -EPERM : 0;
        }
        if (ddwExists)
        {
            failed.Add(pe);
            return -(int)Errno.ENODEV;
        }
        start = SecondWindowStart;
        return 0;
    }

    private int Create(nint argument)
    {
        _mmSet = true;
        if (_groups.Count == 0)
        {
            return -ENXIO;
        }
        if (UserMemory.Read(argument, 40, out vfio_iommu_spapr_tce_create create) < 0)
        {
            return -EFAULT;
        }
        if (create.argsz < 40 || create.flags != 0)
        {
            return -EINVAL;
        }
        int rc = CreateDefaultWindow();
        if (rc < 0)
        {
            return rc;
        }
        rc = CreateWindow((int)Math.Min(create.page_shift, 64u), create.window_size, create.levels, out ulong start);
        if (rc < 0)
        {
            return rc;
        }
        create.start_addr = start;
        return UserMemory.Write(argument, 40, in create) < 0 ? -EFAULT : 0;
    }

    private int Remove(nint argument)
    {
        _mmSet = true;
        if (_groups.Count == 0)
        {
            return -ENXIO;
        }
        if (UserMemory.Read(argument, 16, out vfio_iommu_spapr_tce_remove remove) < 0)
        {
            return -EFAULT;
        }
        if (remove.argsz < 16 || remove.flags != 0)
        {
            return -EINVAL;
        }
        if (_defaultWindowPending && remove.start_addr == 0)
        {
            _defaultWindowPending = false; // cancels the default window not created yet
            return 0;
        }
        int slot = FindTable(remove.start_addr, out TceTable? table);
        if (slot < 0)
        {
            return -EINVAL;
        }
        FreeTable(table!);
        _tables[slot] = null;
        FreeUnusedRegions();
        return 0;
    }

    // ---- DMA through the TCE tables -------------------------------------------------------------------------------------

    public bool TryTranslate(ulong iova, ulong length, bool write, out nint address)
    {
        address = 0;
        if (length == 0 || iova > ulong.MaxValue - (length - 1) || FindTable(iova, out TceTable? table) < 0)
        {
            return false;
        }
        if (_pe.Values.Any(pe => pe.DmaFrozen))
        {
            return false; // an EEH-frozen PE does no DMA
        }
        ulong last = iova + length - 1;
        if (!table!.Contains(last))
        {
            return false;
        }
        ulong firstUa = 0;
        for (ulong page = iova >> table.PageShift; page <= last >> table.PageShift; page++)
        {
            if (!table.Entries.TryGetValue(page, out Tce tce) || (write ? !tce.DeviceWrites : !tce.DeviceReads))
            {
                return false;
            }
            ulong expected = page == iova >> table.PageShift ? tce.Ua : firstUa + ((page << table.PageShift) - (iova & ~(table.PageSize - 1)));
            if (page == iova >> table.PageShift)
            {
                firstUa = tce.Ua;
            }
            else if (tce.Ua != expected)
            {
                return false; // not contiguous in process memory
            }
        }
        address = (nint)(firstUa + (iova & (table.PageSize - 1)));
        return true;
    }

    // ---- EEH -----------------------------------------------------------------------------------------------------------

    /// <summary>A group's EEH PE: MMIO and DMA frozen, reset asserted.</summary>
    private sealed class PeState
    {
        internal bool MmioFrozen { get; set; }

        internal bool DmaFrozen { get; set; }

        internal bool ResetAsserted { get; set; }

        internal int State => ResetAsserted ? VfioUapi.VFIO_EEH_PE_STATE_RESET
            : !MmioFrozen && !DmaFrozen ? VfioUapi.VFIO_EEH_PE_STATE_NORMAL
            : MmioFrozen && DmaFrozen ? VfioUapi.VFIO_EEH_PE_STATE_STOPPED
            : DmaFrozen ? VfioUapi.VFIO_EEH_PE_STATE_STOPPED_DMA
            : VfioUapi.VFIO_EEH_PE_STATE_UNAVAIL;
    }

    private readonly Dictionary<SimGroup, PeState> _pe = [];

    /// <summary>VFIO_EEH_PE_OP: run for each group in attach order; the first non-zero result is returned.</summary>
    private int EehPeOp(nint argument)
    {
        foreach (SimGroup group in _groups)
        {
            int rc = EehPeOp(_pe[group], argument);
            if (rc != 0)
            {
                return rc;
            }
        }
        return 0;
    }

    private int EehPeOp(PeState pe, nint argument)
    {
        const int Minsz = 12, InjectMinsz = 40;
        if (!_kernel.Topology.Eeh)
        {
            return -(int)Errno.ENODEV; // eeh_iommu_group_to_pe: no PE, before the argument is read (as probed)
        }
        if (UserMemory.Read(argument, Minsz, out vfio_eeh_pe_op op) < 0)
        {
            return -EFAULT;
        }
        if (op.argsz < Minsz || op.flags != 0)
        {
            return -EINVAL;
        }
        switch (op.op)
        {
            case VfioUapi.VFIO_EEH_PE_DISABLE:
                return 0;
            case VfioUapi.VFIO_EEH_PE_ENABLE:
                return 0;
            case VfioUapi.VFIO_EEH_PE_UNFREEZE_IO:
                pe.MmioFrozen = false;
                return 0;
            case VfioUapi.VFIO_EEH_PE_UNFREEZE_DMA:
                pe.DmaFrozen = false;
                return 0;
            case VfioUapi.VFIO_EEH_PE_GET_STATE:
                return pe.State;
            case VfioUapi.VFIO_EEH_PE_RESET_DEACTIVATE:
                // Deassert reset, re-enable the devices, unfreeze.
                pe.ResetAsserted = false;
                pe.MmioFrozen = false;
                pe.DmaFrozen = false;
                return 0;
            case VfioUapi.VFIO_EEH_PE_RESET_HOT:
            case VfioUapi.VFIO_EEH_PE_RESET_FUNDAMENTAL:
                // Freeze the PE, block config access, assert the reset.
                pe.MmioFrozen = true;
                pe.DmaFrozen = true;
                pe.ResetAsserted = true;
                return 0;
            case VfioUapi.VFIO_EEH_PE_CONFIGURE:
                return 0;
            case VfioUapi.VFIO_EEH_PE_INJECT_ERR:
                if (op.argsz < InjectMinsz)
                {
                    return -EINVAL;
                }
                if (UserMemory.Read(argument, InjectMinsz, out op) < 0)
                {
                    return -EFAULT;
                }
                if (op.err.func > 19 || op.err.type > 1)
                {
                    return -EINVAL;
                }
                // The injected error freezes the PE, as a real one would.
                pe.MmioFrozen = true;
                pe.DmaFrozen = true;
                return 0;
            default:
                return -EINVAL;
        }
    }
}
