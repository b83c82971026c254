// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The sPAPR TCE backend of a POWER host (drivers/vfio/vfio_iommu_spapr_tce.c): v1 (type 2,
/// one group, the platform's 32-bit window, ENABLE/DISABLE) and v2 (type 7, pre-registered memory, a deferred default
/// window plus dynamic windows via CREATE/REMOVE). Devices DMA through the TCE tables of the container's windows.
/// The platform code is the topology's <see cref="SimulatedSpaprPlatform"/>: a PowerNV POWER9 PHB (from the kernel's
/// source) or the pseries guest the facts were probed on (Linux 6.12 under QEMU 10); PAGE_SIZE is the host's 4 KiB.
/// </summary>
internal sealed partial class SpaprTceDriver : IVfioIommuDriver, IDmaSpace
{
    // The VFIO ioctls the sPAPR backend serves share numbers with Type1's and the device's (_IO(';', 100 + n)).
    internal const uint GetInfoRequest = 0x3B70;    // VFIO_IOMMU_SPAPR_TCE_GET_INFO
    internal const uint EnableRequest = 0x3B73;     // VFIO_IOMMU_ENABLE
    internal const uint DisableRequest = 0x3B74;    // VFIO_IOMMU_DISABLE
    internal const uint RegisterRequest = 0x3B75;   // VFIO_IOMMU_SPAPR_REGISTER_MEMORY
    internal const uint UnregisterRequest = 0x3B76; // VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY
    internal const uint CreateRequest = 0x3B77;     // VFIO_IOMMU_SPAPR_TCE_CREATE
    internal const uint RemoveRequest = 0x3B78;     // VFIO_IOMMU_SPAPR_TCE_REMOVE
    internal const uint EehPeOpRequest = 0x3B79;    // VFIO_EEH_PE_OP

    /// <summary>The platform's 32-bit (default) window: bus address 0, 2 GiB on PowerNV (up to the M32 base), 1 GiB on
    /// the probed pseries guest (its <c>ibm,dma-window</c>).</summary>
    internal const uint Dma32Start = 0;
    internal const uint PowerNvDma32Size = 0x8000_0000;
    internal const uint PSeriesDma32Size = 0x4000_0000;

    /// <summary>H_PARAMETER: the hypervisor's answer to a TCE outside its table, which pseries' tce_exchange_pseries
    /// returns as is, so user space sees errno 4 (the probe: a map running past the window end).</summary>
    internal const int HParameter = -4;

    /// <summary>IOMMU page sizes of a POWER9 PHB: 4 KiB, 64 KiB, 2 MiB, 1 GiB (the topology's default).</summary>
    internal const ulong PageSizes = (1UL << 12) | (1UL << 16) | (1UL << 21) | (1UL << 30);

    /// <summary>IOMMU_TABLE_GROUP_MAX_TABLES.</summary>
    internal const int MaxWindows = 2;

    /// <summary>POWERNV_IOMMU_MAX_LEVELS.</summary>
    internal const uint MaxLevels = 5;

    /// <summary>The bus address of window 1 (PowerNV's <c>tce_bypass_base</c>, 1 &lt;&lt; 59); window 0 starts at 0.</summary>
    internal const ulong SecondWindowStart = 1UL << 59;

    /// <summary>The largest window the platform creates (its <c>memory_hotplug_max()</c>: the model's 1 TiB of RAM).</summary>
    internal const ulong MaxWindowSize = 1UL << 40;

    private const int PageShift = 12;
    private const ulong PageSize = 1UL << PageShift;
    private const int EINVAL = (int)Errno.EINVAL;
    private const int EPERM = (int)Errno.EPERM;
    private const int EFAULT = (int)Errno.EFAULT;
    private const int ENOTTY = (int)Errno.ENOTTY;
    private const int ENXIO = (int)Errno.ENXIO;

    private readonly SimulatedKernel _kernel;
    private readonly bool _v2;
    private readonly bool _pseries;
    private readonly uint _dma32Size;
    private readonly List<SimGroup> _groups = [];
    private readonly TceTable?[] _tables;
    private readonly List<SpaprMemoryRegion> _prereg = [];
    private bool _enabled;
    private bool _defaultWindowPending;
    private bool _mmSet;

    private SpaprTceDriver(SimulatedKernel kernel, bool v2)
    {
        _kernel = kernel;
        _v2 = v2;
        _tables = new TceTable?[kernel.Topology.SpaprWindows];
        _pseries = kernel.Topology.SpaprPlatform == SimulatedSpaprPlatform.PSeries;
        _dma32Size = _pseries ? PSeriesDma32Size : PowerNvDma32Size;
    }

    /// <summary>The registration: CHECK_EXTENSION answers the same before and after SET_IOMMU (tce_iommu_ioctl with
    /// no container).</summary>
    internal static IommuBackendRegistration Registration(SimulatedKernel kernel) => new(
        "vfio-iommu-spapr-tce",
        ForNoIommu: false,
        CheckExtension: extension => CheckExtension(kernel, extension),
        Open: type => type switch
        {
            VfioUapi.VFIO_SPAPR_TCE_IOMMU => (0, new SpaprTceDriver(kernel, v2: false)),
            VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU when !kernel.Topology.SpaprTceV1Only => (0, new SpaprTceDriver(kernel, v2: true)),
            _ => (-EINVAL, null),
        });

    private static int CheckExtension(SimulatedKernel kernel, uint extension) => extension switch
    {
        VfioUapi.VFIO_SPAPR_TCE_IOMMU => 1,
        VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU => kernel.Topology.SpaprTceV1Only ? 0 : 1,
        VfioUapi.VFIO_EEH => kernel.Topology.Eeh ? 1 : 0, // eeh_enabled(), returned as is
        _ => 0,
    };

    public int CheckExtension(uint extension) => CheckExtension(_kernel, extension);

    /// <summary>The number of valid TCEs over every window, for state queries.</summary>
    internal int MappingCount => _tables.Sum(t => t?.Entries.Count ?? 0);

    /// <summary>One TCE table (a DMA window): bus addresses [Start, Start + Size), entries of 2^PageShift bytes.</summary>
    private sealed class TceTable(ulong start, int pageShift, ulong size, ulong chargedPages)
    {
        internal ulong Start { get; } = start;

        internal int PageShift { get; } = pageShift;

        internal ulong PageSize => 1UL << PageShift;

        internal ulong Size { get; } = size;

        /// <summary>Pages of RLIMIT_MEMLOCK charged for the table itself (v2).</summary>
        internal ulong ChargedPages { get; } = chargedPages;

        internal Dictionary<ulong, Tce> Entries { get; } = [];

        internal bool Contains(ulong ioba) => ioba >= Start && ioba - Start < Size;
    }

    /// <summary>A valid TCE: the user address of the page, its direction, and (v2) the region it lies in.</summary>
    private readonly record struct Tce(ulong Ua, bool DeviceReads, bool DeviceWrites, SpaprMemoryRegion? Region);

    // ---- attach / detach / release --------------------------------------------------------------------------------

    public int AttachGroup(SimGroup group)
    {
        if (!_v2 && _groups.Count > 0)
        {
            return -(int)Errno.EBUSY; // v1: exactly one group
        }
        if (_groups.Contains(group))
        {
            return -(int)Errno.EBUSY;
        }
        if (_groups.Count == 0)
        {
            if (_v2)
            {
                // tce_iommu_take_ownership_ddw: the default window is created lazily by the first MAP/UNMAP/CREATE.
                _defaultWindowPending = _tables.All(t => t is null);
            }
            else
            {
                // v1 uses the platform's own 32-bit window (4 KiB pages); ENABLE accounts for it.
                _tables[0] ??= new TceTable(Dma32Start, PageShift, _dma32Size, 0);
            }
        }
        _groups.Add(group);
        _pe[group] = new PeState();
        foreach (SimDevice device in group.Devices)
        {
            device.Dma = this;
        }
        return 0;
    }

    public void DetachGroup(SimGroup group)
    {
        _groups.Remove(group);
        _pe.Remove(group);
        foreach (SimDevice device in group.Devices)
        {
            device.Dma = null;
        }
    }

    public void Release()
    {
        // tce_iommu_release: clear and free every table, drop the pre-registrations, undo ENABLE's accounting.
        for (int i = 0; i < _tables.Length; i++)
        {
            if (_tables[i] is { } table)
            {
                FreeTable(table);
                _tables[i] = null;
            }
        }
        foreach (SpaprMemoryRegion region in _prereg.ToList())
        {
            _prereg.Remove(region);
            PutRegion(region);
        }
        Disable();
        _defaultWindowPending = false;
    }

    private void FreeTable(TceTable table)
    {
        Clear(table, 0, ulong.MaxValue);
        _kernel.UnchargeLockedVm(table.ChargedPages);
    }

    /// <summary>Clears the TCEs with index in [first, last] of the window (tce_iommu_clear).</summary>
    private static void Clear(TceTable table, ulong first, ulong last)
    {
        foreach (ulong index in table.Entries.Keys.Where(k => k >= first && k <= last).ToList())
        {
            Release(table.Entries[index]);
            table.Entries.Remove(index);
        }
    }

    private static void Release(Tce tce)
    {
        if (tce.Region is { } region)
        {
            region.Mapped--;
        }
    }

    // ---- ioctls ---------------------------------------------------------------------------------------------------

    public int Ioctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_IOMMU_MAP_DMA)
        {
            return MapDma(argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_UNMAP_DMA)
        {
            return UnmapDma(argument);
        }
        return request switch
        {
            GetInfoRequest => GetInfo(argument),
            RegisterRequest when _v2 => Register(argument),
            UnregisterRequest when _v2 => Unregister(argument),
            CreateRequest when _v2 => Create(argument),
            RemoveRequest when _v2 => Remove(argument),
            EnableRequest when !_v2 => Enable(),
            DisableRequest when !_v2 => Disable(),
            EehPeOpRequest => EehPeOp(argument),
            _ => -ENOTTY,
        };
    }

    private int GetInfo(nint argument)
    {
        const int Minsz = 16, DdwSize = 32;
        if (UserMemory.Read(argument, Minsz, out vfio_iommu_spapr_tce_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz)
        {
            return -EINVAL;
        }
        info.dma32_window_start = Dma32Start;
        info.dma32_window_size = _dma32Size;
        info.flags = 0;
        info.ddw = default;
        if (_v2)
        {
            info.flags = VfioUapi.VFIO_IOMMU_SPAPR_INFO_DDW;
            info.ddw.pgsizes = _kernel.Topology.SpaprPageSizes;
            info.ddw.max_dynamic_windows_supported = (uint)_tables.Length;
            info.ddw.levels = _kernel.Topology.SpaprMaxLevels;
        }
        return UserMemory.Write(argument, info.argsz >= DdwSize ? DdwSize : Minsz, in info) < 0 ? -EFAULT : 0;
    }

    /// <summary>tce_iommu_create_default_window: the pending v2 default window (4 KiB pages, the 32-bit size, 1 level).</summary>
    private int CreateDefaultWindow()
    {
        if (!_defaultWindowPending)
        {
            return 0;
        }
        int rc = CreateWindow(PageShift, _dma32Size, 1, out _);
        if (rc == 0)
        {
            _defaultWindowPending = false;
        }
        return rc;
    }

    private int FindTable(ulong ioba, out TceTable? table)
    {
        for (int i = 0; i < _tables.Length; i++)
        {
            if (_tables[i] is { } t && t.Contains(ioba))
            {
                table = t;
                return i;
            }
        }
        table = null;
        return -1;
    }

    /// <summary>iommu_tce_check_ioba: aligned to the window's page and the first page inside the window.</summary>
    private static bool IobaInvalid(TceTable table, ulong ioba) => (ioba & (table.PageSize - 1)) != 0 || !table.Contains(ioba);

    private int MapDma(nint argument)
    {
        if (!_enabled)
        {
            return -EPERM;
        }
        if (UserMemory.Read(argument, 32, out vfio_iommu_type1_dma_map map) < 0)
        {
            return -EFAULT;
        }
        const uint ReadWrite = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE;
        if (map.argsz < 32 || (map.flags & ~ReadWrite) != 0)
        {
            return -EINVAL;
        }
        int rc = CreateDefaultWindow();
        if (rc < 0)
        {
            return rc;
        }
        if (FindTable(map.iova, out TceTable? table) < 0)
        {
            return -ENXIO;
        }
        ulong mask = table!.PageSize - 1;
        if ((map.size & mask) != 0 || (map.vaddr & mask) != 0)
        {
            return -EINVAL;
        }
        if ((map.flags & ReadWrite) == 0)
        {
            return -EINVAL;
        }
        if (IobaInvalid(table, map.iova))
        {
            // Quirk kept from 6.12: iommu_tce_put_param_check is a boolean expression returned as is.
            return 1;
        }
        bool deviceReads = (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_READ) != 0;
        bool deviceWrites = (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0;
        ulong first = map.iova >> table.PageShift;
        ulong pages = map.size >> table.PageShift;
        ulong end = (table.Start + table.Size) >> table.PageShift;
        var written = new List<ulong>();
        for (ulong i = 0; i < pages; i++)
        {
            ulong entry = first + i;
            ulong ua = map.vaddr + (i << table.PageShift);
            SpaprMemoryRegion? region = null;
            rc = 0;
            if (entry >= end)
            {
                // The platform refuses an entry past the window: PowerNV's pnv_tce_xchg with EINVAL; pseries' hypervisor
                // with H_PARAMETER, returned as is (errno 4 on the probed guest).
                rc = _pseries ? HParameter : -EINVAL;
            }
            else if (_v2)
            {
                // tce_iommu_prereg_ua_to_hpa: the page must lie in memory this process pre-registered.
                region = _kernel.SpaprPreregistered.Find(r => r.Contains(ua, table.PageSize));
                rc = region is null ? -EINVAL : 0;
            }
            else if (ua < PageSize)
            {
                rc = -EFAULT; // tce_iommu_use_page: the page cannot be pinned
            }
            if (rc < 0)
            {
                // On error every entry this call wrote is cleared.
                foreach (ulong done in written)
                {
                    Release(table.Entries[done]);
                    table.Entries.Remove(done);
                }
                return rc;
            }
            if (table.Entries.TryGetValue(entry, out Tce old))
            {
                Release(old); // no overlap check: the old page is released
            }
            if (region is not null)
            {
                region.Mapped++;
            }
            table.Entries[entry] = new Tce(ua, deviceReads, deviceWrites, region);
            written.Add(entry);
        }
        return 0;
    }

    private int UnmapDma(nint argument)
    {
        if (!_enabled)
        {
            return -EPERM;
        }
        if (UserMemory.Read(argument, 24, out vfio_iommu_type1_dma_unmap unmap) < 0)
        {
            return -EFAULT;
        }
        if (unmap.argsz < 24 || unmap.flags != 0)
        {
            return -EINVAL;
        }
        int rc = CreateDefaultWindow();
        if (rc < 0)
        {
            return rc;
        }
        if (FindTable(unmap.iova, out TceTable? table) < 0)
        {
            return -ENXIO;
        }
        if ((unmap.size & (table!.PageSize - 1)) != 0)
        {
            return -EINVAL;
        }
        if (IobaInvalid(table, unmap.iova))
        {
            return 1; // the same boolean quirk (iommu_tce_clear_param_check)
        }
        ulong pages = unmap.size >> table.PageShift;
        if (pages > 0)
        {
            ulong first = unmap.iova >> table.PageShift;
            Clear(table, first, first + pages - 1);
        }
        return 0;
    }

    // ---- v1 ENABLE / DISABLE ----------------------------------------------------------------------------------------

    private int Enable()
    {
        if (_enabled)
        {
            return -(int)Errno.EBUSY;
        }
        _mmSet = true;
        // The whole 32-bit window is accounted against RLIMIT_MEMLOCK.
        if (!_kernel.TryChargeLockedVm(_dma32Size >> PageShift))
        {
            return -(int)Errno.ENOMEM;
        }
        _enabled = true;
        return 0;
    }

    private int Disable()
    {
        if (!_v2 && _enabled)
        {
            _kernel.UnchargeLockedVm(_dma32Size >> PageShift);
        }
        _enabled = false;
        return 0;
    }
}
