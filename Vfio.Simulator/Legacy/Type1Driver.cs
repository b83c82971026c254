// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The Type1 IOMMU backend of a legacy container (the kernel's <c>drivers/vfio/vfio_iommu_type1.c</c>):
/// v1 (type 1) and v2 (type 3; type 6 asks for nesting, which the modelled Intel VT-d does not support). It keeps the
/// container's DMA mappings as a sorted interval map and is the <see cref="IDmaSpace"/> of every device of its groups.
/// </summary>
/// <remarks>
/// Every attached group shares one IOMMU domain with the properties the real kernel showed on the testbed's emulated
/// VT-d: page sizes 4 KiB | 2 MiB | 1 GiB, aperture 0..2^39−1 minus the MSI window 0xfee00000–0xfeefffff,
/// no snoop control (DMA_CC answers 0). State is guarded by its own lock as well as the kernel's: device models
/// translate DMA from their own threads.
/// </remarks>
internal sealed partial class Type1Driver : IVfioIommuDriver, IDmaSpace
{
    internal const ulong PageSize = 4096;

    /// <summary>The domain's page sizes, as VFIO_IOMMU_GET_INFO showed them on the real kernel (the testbed).</summary>
    internal const ulong DomainPageSizes = 0x40201000;

    /// <summary><c>pgsize_bitmap</c> before any domain: <c>PAGE_MASK</c>, every power of two ≥ PAGE_SIZE.</summary>
    private const ulong InitialPageSizes = ~(PageSize - 1);

    /// <summary>The domain enforces cache coherency (VFIO_DMA_CC_IOMMU): QEMU's VT-d has no snoop control by default.</summary>
    private const bool DomainEnforcesCacheCoherency = false;

    /// <summary>The domain's valid IOVA ranges (inclusive ends): aperture minus the reserved MSI window.</summary>
    private static readonly vfio_iova_range[] s_domainIovaRanges =
    [
        new() { start = 0x0, end = 0xfedf_ffff },
        new() { start = 0xfef0_0000, end = SimulatedVtd.ApertureEnd },
    ];

    private readonly SimulatedKernel _kernel;
    private readonly Lock _sync = new();
    private readonly List<Type1Mapping> _mappings = [];

    /// <summary>Records of removed mappings, reused by the next MAP_DMA: the map/unmap path allocates nothing once warm
    /// (the kernel port's contract), as the kernel's slab cache reuses its <c>struct vfio_dma</c>.</summary>
    private readonly Stack<Type1Mapping> _free = new();
    private readonly List<SimGroup> _groups = [];
    private readonly bool _v2;
    private readonly bool _nesting;
    private ulong _pageSizes = InitialPageSizes;
    private vfio_iova_range[] _iovaRanges = [];
    private int _dmaAvail;
    private bool _dirtyTracking;
    private int _vaddrInvalidCount;

    private Type1Driver(SimulatedKernel kernel, bool v2, bool nesting)
    {
        _kernel = kernel;
        _v2 = v2;
        _nesting = nesting;
        _dmaAvail = kernel.Topology.DmaEntryLimit;
    }

    /// <summary>The registration the kernel polls for CHECK_EXTENSION and opens at SET_IOMMU.</summary>
    internal static IommuBackendRegistration Registration(SimulatedKernel kernel) => new(
        "vfio-iommu-type1",
        ForNoIommu: false,
        CheckExtension: extension => CheckExtension(null, extension),
        Open: type => Open(kernel, type));

    /// <summary>True for a v2 container (type 3 or 6).</summary>
    internal bool IsV2 => _v2;

    /// <summary>
    /// The kernel's <c>group->pinned_page_dirty_scope</c> for every attached group. False (real vfio-pci: an IOMMU-backed
    /// group never declares it) makes every page of every mapping read as dirty (vfio_iommu_type1_dirty_pages). True is a model extension for
    /// tests: only pages a device wrote through DMA while tracking was on read as dirty.
    /// </summary>
    internal bool PinnedPageDirtyScope { get; set; }

    /// <summary>The number of mappings, for tests.</summary>
    internal int MappingCount
    {
        get
        {
            lock (_sync)
            {
                return _mappings.Count;
            }
        }
    }

    /// <summary><c>vfio_iommu_type1_open</c>: type 1 is v1, 3 is v2, 6 is v2 asking for nesting; anything else EINVAL.</summary>
    private static (int Result, IVfioIommuDriver? Driver) Open(SimulatedKernel kernel, uint type)
    {
        if (type == VfioUapi.VFIO_TYPE1_IOMMU)
        {
            return (0, new Type1Driver(kernel, v2: false, nesting: false));
        }
        if (type == VfioUapi.VFIO_TYPE1v2_IOMMU)
        {
            return (0, new Type1Driver(kernel, v2: true, nesting: false));
        }
        if (type == VfioUapi.VFIO_TYPE1_NESTING_IOMMU)
        {
            return (0, new Type1Driver(kernel, v2: true, nesting: true));
        }
        return (-(int)Errno.EINVAL, null);
    }

    /// <summary>VFIO_CHECK_EXTENSION's answers for Type1 (vfio_iommu_type1_check_extension); <paramref name="iommu"/> null is the stateless poll before SET_IOMMU.</summary>
    private static int CheckExtension(Type1Driver? iommu, uint extension)
    {
        if (extension is VfioUapi.VFIO_TYPE1_IOMMU or VfioUapi.VFIO_TYPE1v2_IOMMU or VfioUapi.VFIO_TYPE1_NESTING_IOMMU or VfioUapi.VFIO_UNMAP_ALL)
        {
            return 1;
        }
        if (extension == VfioUapi.VFIO_UPDATE_VADDR)
        {
            // 1 unless an emulated-IOMMU (mdev) group is attached; the model has none.
            return iommu is null ? 0 : 1;
        }
        if (extension == VfioUapi.VFIO_DMA_CC_IOMMU)
        {
            return iommu is not null && DomainEnforcesCacheCoherency ? 1 : 0;
        }
        return 0;
    }

    public int CheckExtension(uint extension) => CheckExtension(this, extension);

    public int Ioctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_IOMMU_GET_INFO)
        {
            return GetInfo(argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_MAP_DMA)
        {
            return MapDma(argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_UNMAP_DMA)
        {
            return UnmapDma(argument);
        }
        if (request == VfioUapi.VFIO_IOMMU_DIRTY_PAGES)
        {
            return DirtyPages(argument);
        }
        return -(int)Errno.ENOTTY;
    }

    /// <summary><c>vfio_iommu_type1_attach_group</c>, in the kernel's order of checks.</summary>
    public int AttachGroup(SimGroup group)
    {
        lock (_sync)
        {
            if (_groups.Contains(group))
            {
                return -(int)Errno.EINVAL;
            }
            if (_vaddrInvalidCount > 0)
            {
                return -(int)Errno.EBUSY;
            }
            if (_nesting)
            {
                // iommu_enable_nesting(): VT-d has no enable_nesting op in 6.12.
                return -(int)Errno.EINVAL;
            }
            // Every group joins the one domain the first created: same aperture and reserved regions, so existing
            // mappings can neither fall outside the aperture nor hit a reserved region, and nothing needs replaying.
            if (!_kernel.Topology.InterruptRemapping && !_kernel.Topology.AllowUnsafeInterrupts)
            {
                return -(int)Errno.EPERM;
            }
            _pageSizes = (_groups.Count == 0 ? InitialPageSizes : _pageSizes) & DomainPageSizes;
            _iovaRanges = s_domainIovaRanges;
            _groups.Add(group);
            foreach (SimDevice device in group.Devices)
            {
                device.Dma = this;
            }
            return 0;
        }
    }

    /// <summary><c>vfio_iommu_type1_detach_group</c>: the devices lose their translation; when the last IOMMU-backed
    /// group leaves every mapping is unpinned and the IOVA list is recomputed (empty).</summary>
    public void DetachGroup(SimGroup group)
    {
        lock (_sync)
        {
            if (!_groups.Remove(group))
            {
                return;
            }
            foreach (SimDevice device in group.Devices)
            {
                if (ReferenceEquals(device.Dma, this))
                {
                    device.Dma = null;
                }
            }
            if (_groups.Count == 0)
            {
                UnpinAll();
                _pageSizes = InitialPageSizes;
                _iovaRanges = [];
            }
        }
    }

    /// <summary><c>vfio_iommu_type1_release</c>: every mapping is removed and unpinned, dirty tracking freed.</summary>
    public void Release()
    {
        lock (_sync)
        {
            foreach (SimGroup group in _groups)
            {
                foreach (SimDevice device in group.Devices)
                {
                    if (ReferenceEquals(device.Dma, this))
                    {
                        device.Dma = null;
                    }
                }
            }
            _groups.Clear();
            for (int i = _mappings.Count - 1; i >= 0; i--)
            {
                RemoveAt(i);
            }
            _dirtyTracking = false;
        }
    }

    private void UnpinAll()
    {
        foreach (Type1Mapping mapping in _mappings)
        {
            _kernel.UnchargeLockedVm(mapping.LockedPages);
            mapping.LockedPages = 0;
        }
    }

    /// <summary>
    /// Device DMA through the container's mappings. The range must lie in one mapping, or in a run of mappings that are
    /// adjacent in IOVA <em>and</em> contiguous in process memory (the model hands back one process address); each must
    /// allow the access. A write while dirty tracking is on marks the pages it touched. A mapping whose process address
    /// was invalidated (UNMAP_DMA VADDR) still translates to its pinned memory, as on Linux.
    /// </summary>
    public bool TryTranslate(ulong iova, ulong length, bool write, out nint address)
    {
        address = 0;
        ulong end = iova + length;
        if (length == 0 || end < iova)
        {
            return false;
        }
        lock (_sync)
        {
            int first = FirstEndingAfter(iova);
            if (first >= _mappings.Count || _mappings[first].Iova > iova)
            {
                return false;
            }
            int last = first;
            for (; ; last++)
            {
                Type1Mapping mapping = _mappings[last];
                if (!SimulatedVtd.Allows(write, mapping.Readable, mapping.Writable))
                {
                    return false;
                }
                if (mapping.End >= end)
                {
                    break;
                }
                if (last + 1 >= _mappings.Count)
                {
                    return false;
                }
                Type1Mapping next = _mappings[last + 1];
                if (next.Iova != mapping.End || next.Vaddr != mapping.Vaddr + mapping.Size)
                {
                    return false;
                }
            }
            if (write && _dirtyTracking)
            {
                for (int i = first; i <= last; i++)
                {
                    MarkDirty(_mappings[i], Math.Max(iova, _mappings[i].Iova), Math.Min(end, _mappings[i].End));
                }
            }
            Type1Mapping head = _mappings[first];
            address = (nint)(head.Vaddr + (iova - head.Iova));
            return true;
        }
    }

    /// <summary>The index of the first mapping whose end lies above <paramref name="iova"/> (the only one that can
    /// contain it), or the count when none does.</summary>
    private int FirstEndingAfter(ulong iova)
    {
        int lo = 0;
        int hi = _mappings.Count;
        while (lo < hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            if (_mappings[mid].End > iova)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }
        return lo;
    }

    /// <summary><c>vfio_find_dma</c>: a mapping overlapping [start, start+size) with the kernel's unsigned arithmetic
    /// (with size 0 it finds a mapping that contains <paramref name="start"/> but does not begin there).</summary>
    private Type1Mapping? FindDma(ulong start, ulong size)
    {
        int i = FirstEndingAfter(start);
        if (i >= _mappings.Count)
        {
            return null;
        }
        Type1Mapping mapping = _mappings[i];
        return start + size <= mapping.Iova ? null : mapping;
    }

    private void Insert(Type1Mapping mapping)
    {
        int i = FirstEndingAfter(mapping.Iova);
        _mappings.Insert(i, mapping);
        _dmaAvail--;
    }

    /// <summary><c>vfio_remove_dma</c>: unmap, unpin, uncharge, free the entry.</summary>
    private void RemoveAt(int index)
    {
        Type1Mapping mapping = _mappings[index];
        _mappings.RemoveAt(index);
        _kernel.UnchargeLockedVm(mapping.LockedPages);
        mapping.LockedPages = 0;
        mapping.Dirty = null;
        if (mapping.VaddrInvalid)
        {
            mapping.VaddrInvalid = false;
            _vaddrInvalidCount--;
        }
        _dmaAvail++;
        _free.Push(mapping);
    }
}
