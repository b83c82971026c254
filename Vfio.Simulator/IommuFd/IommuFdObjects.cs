// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>An object of an iommufd context's ID table (_iommufd_object_alloc).</summary>
internal abstract class IommuFdObject
{
    internal uint Id { get; set; }
}

/// <summary>A DEVICE object: a device bound to the context (cdev bind, or a group-path open with an iommufd).</summary>
internal sealed class DeviceObject(IommuFdFile context, SimDevice device, bool viaCdev) : IommuFdObject
{
    internal IommuFdFile Context { get; } = context;

    internal SimDevice Device { get; } = device;

    /// <summary>True for a cdev bind; false for a device opened through a group attached to the iommufd.</summary>
    internal bool ViaCdev { get; } = viaCdev;

    /// <summary>The HWPT the device is attached to, or null (DMA blocked).</summary>
    internal HwptObject? Hwpt { get; set; }
}

/// <summary>
/// A HWPT_PAGING object: an IOMMU domain holding every mapping of its IOAS. It is the IDmaSpace of the devices
/// attached to it; with dirty tracking on, device writes mark pages dirty (iommufd_hwpt_get_dirty_bitmap).
/// </summary>
internal sealed class HwptObject(IoasObject ioas, bool autoDomain, bool dirtyCapable) : IommuFdObject, IDmaSpace
{
    private readonly HashSet<ulong> _dirtyPages = [];

    internal IoasObject Ioas { get; } = ioas;

    /// <summary>Created by attaching a device to an IOAS; destroyed with its last device.</summary>
    internal bool AutoDomain { get; } = autoDomain;

    /// <summary>Allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain has dirty-tracking ops.</summary>
    internal bool DirtyCapable { get; } = dirtyCapable;

    internal bool DirtyTracking { get; set; }

    internal List<DeviceObject> Devices { get; } = [];

    internal void ClearDirty() => _dirtyPages.Clear();

    /// <summary>Reads (and unless <paramref name="keep"/>, clears) the dirty 4 KiB pages in [start, last].</summary>
    internal List<ulong> TakeDirty(ulong start, ulong last, bool keep)
    {
        var pages = new List<ulong>();
        foreach (ulong page in _dirtyPages)
        {
            ulong iova = page * SimulatedVtd.PageSize;
            if (iova + SimulatedVtd.PageSize - 1 >= start && iova <= last)
            {
                pages.Add(iova);
            }
        }
        if (!keep)
        {
            foreach (ulong iova in pages)
            {
                _dirtyPages.Remove(iova / SimulatedVtd.PageSize);
            }
        }
        pages.Sort();
        return pages;
    }

    public bool TryTranslate(ulong iova, ulong length, bool write, out nint address)
    {
        address = 0;
        if (length == 0 || iova > ulong.MaxValue - (length - 1))
        {
            return false;
        }
        ulong last = iova + length - 1;
        int index = Ioas.IndexOfArea(iova);
        if (index < 0)
        {
            return false;
        }
        IoasArea first = Ioas.Areas[index];
        IoasArea previous = first;
        for (int i = index; ; i++)
        {
            IoasArea area = Ioas.Areas[i];
            if (i > index && (area.Iova != previous.Last + 1 || area.UserVa != previous.UserVa + previous.Length))
            {
                return false;
            }
            if (!SimulatedVtd.Allows(write, area.Readable, area.Writable))
            {
                return false;
            }
            if (area.Last >= last)
            {
                break;
            }
            if (i + 1 >= Ioas.Areas.Count)
            {
                return false;
            }
            previous = area;
        }
        address = (nint)(first.UserVa + (iova - first.Iova));
        if (write && DirtyTracking)
        {
            for (ulong page = iova / SimulatedVtd.PageSize; page <= last / SimulatedVtd.PageSize; page++)
            {
                _dirtyPages.Add(page);
            }
        }
        return true;
    }
}

/// <summary>A mapping of an IOAS: [Iova, Last] → process memory at UserVa.</summary>
/// <remarks>Pooled by the context (<see cref="IommuFdFile.RentArea"/>, returned when the area leaves its IOAS), so
/// the map/unmap path allocates nothing once warm; nothing may keep a reference after the area was removed.</remarks>
internal sealed class IoasArea
{
    internal ulong Iova { get; set; }

    internal ulong Last { get; set; }

    internal ulong UserVa { get; set; }

    internal bool Readable { get; private set; }

    internal bool Writable { get; private set; }

    /// <summary>The pages were pinned writable (the original MAP had WRITEABLE); COPY may not add write access otherwise.</summary>
    internal bool PagesWritable { get; private set; }

    internal ulong Length => Last - Iova + 1;

    /// <summary>The pinned-page set this area's memory belongs to (shared by COPY and splits); null while pooled.</summary>
    internal IoptPages Pages { get; private set; } = null!;

    /// <summary>The area's pages are pinned (filled into at least one domain of its IOAS).</summary>
    internal bool Pinned { get; set; }

    /// <summary>The first and last user page number the area covers.</summary>
    internal (ulong First, ulong Last) PageSpan => (UserVa / SimulatedVtd.PageSize, (UserVa + Length - 1) / SimulatedVtd.PageSize);

    /// <summary>The first user page number the area covers.</summary>
    internal ulong FirstPage => UserVa / SimulatedVtd.PageSize;

    /// <summary>Makes this (new or recycled) area [iova, last] → userVa over <paramref name="pages"/>, unpinned, and
    /// takes a reference on the pages.</summary>
    internal IoasArea Set(ulong iova, ulong last, ulong userVa, bool readable, bool writable, bool pagesWritable, IoptPages pages)
    {
        Iova = iova;
        Last = last;
        UserVa = userVa;
        Readable = readable;
        Writable = writable;
        PagesWritable = pagesWritable;
        Pinned = false;
        Pages = pages;
        pages.Users++;
        return this;
    }

    /// <summary>The area left its IOAS (already unpinned): drops its reference on the pages and returns the pages
    /// when that was the last one.</summary>
    /// <returns>The pages when no area uses them any more (the caller pools them), else null.</returns>
    internal IoptPages? Clear()
    {
        IoptPages pages = Pages;
        Pages = null!;
        return --pages.Users == 0 ? pages : null;
    }
}

/// <summary>One piece of memory for a new mapping: from MAP (one piece, new pages) or COPY (one per source area,
/// sharing the source's pages).</summary>
internal readonly record struct PagesPiece(ulong UserVa, ulong Length, bool PagesWritable, IoptPages? Pages = null);

/// <summary>
/// The kernel's <c>struct iopt_pages</c> as far as accounting goes (drivers/iommu/iommufd/pages.c): the memory of one
/// IOAS_MAP, shared by the areas COPY and splits make from it. A page pinned for several areas is pinned — and
/// charged to RLIMIT_MEMLOCK — once (<c>npinned</c> vs <c>last_npinned</c>); the charge goes to the user's or the
/// process's counter by the context's accounting mode at MAP time.
/// </summary>
/// <remarks>Pooled by the context like the areas: <see cref="Users"/> counts the areas referring to it (the
/// kernel's kref), and at zero the object goes back to the pool.</remarks>
internal sealed class IoptPages(SimulatedKernel kernel)
{
    private readonly List<IoasArea> _pinned = [];
    private ulong _charged;
    private bool _perUser;

    /// <summary>The areas (of any IOAS of the context) that use these pages.</summary>
    internal int Users { get; set; }

    /// <summary>Readies a new or pooled object for a new MAP in the given accounting mode: no users, nothing pinned.</summary>
    internal IoptPages Reset(bool perUser)
    {
        System.Diagnostics.Debug.Assert(Users == 0 && _pinned.Count == 0 && _charged == 0, "pages still in use");
        _perUser = perUser;
        return this;
    }

    /// <summary>Pins an area's pages: charges the pages no other pinned area of these pages covers. False (nothing
    /// pinned) when RLIMIT_MEMLOCK would be exceeded: ENOMEM.</summary>
    internal bool Pin(IoasArea area)
    {
        if (area.Pinned)
        {
            return true;
        }
        _pinned.Add(area);
        ulong now = CountPinned();
        if (now > _charged && !kernel.TryChargeLockedVm(now - _charged, _perUser))
        {
            _pinned.Remove(area);
            return false;
        }
        _charged = Math.Max(now, _charged);
        area.Pinned = true;
        return true;
    }

    /// <summary>Adds the right half of a split pinned area: the same pages, no new charge.</summary>
    internal void AddSplit(IoasArea area)
    {
        _pinned.Add(area);
        area.Pinned = true;
    }

    /// <summary>Unpins an area's pages: pages no other pinned area covers are uncharged.</summary>
    internal void Unpin(IoasArea area)
    {
        if (!area.Pinned)
        {
            return;
        }
        area.Pinned = false;
        _pinned.Remove(area);
        ulong now = CountPinned();
        if (now < _charged)
        {
            kernel.UnchargeLockedVm(_charged - now, _perUser);
            _charged = now;
        }
    }

    /// <summary>The number of distinct user pages the pinned areas cover. Sorts the pinned list by first page in
    /// place (insertion sort: the list is short and almost always sorted already) and sweeps it, allocating nothing.</summary>
    private ulong CountPinned()
    {
        for (int i = 1; i < _pinned.Count; i++)
        {
            IoasArea area = _pinned[i];
            ulong key = area.FirstPage;
            int j = i - 1;
            while (j >= 0 && _pinned[j].FirstPage > key)
            {
                _pinned[j + 1] = _pinned[j];
                j--;
            }
            _pinned[j + 1] = area;
        }
        ulong count = 0;
        ulong next = 0;
        bool any = false;
        foreach (IoasArea area in _pinned)
        {
            (ulong first, ulong last) = area.PageSpan;
            ulong from = any && first < next ? next : first;
            if (from <= last)
            {
                count += last - from + 1;
                next = last + 1;
                any = true;
            }
        }
        return count;
    }
}
