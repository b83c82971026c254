// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// An IOAS (io_pagetable): its areas, the reserved IOVA set (domain apertures and devices' reserved regions), the
/// allowed list, its alignment and its domains (drivers/iommu/iommufd).
/// </summary>
internal sealed class IoasObject(IommuFdFile context) : IommuFdObject
{
    private const int EINVAL = (int)Errno.EINVAL;

    /// <summary>The reserved IOVA ranges with their owners, sorted by start (so IOVA allocation can walk them beside
    /// the areas without sorting a copy).</summary>
    private readonly List<(ulong Start, ulong Last, object Owner)> _reserved = [];

    /// <summary>Scratch list of the areas one <see cref="Map"/> added, reused so mapping allocates nothing.</summary>
    private readonly List<IoasArea> _added = [];

    /// <summary>The areas, sorted by IOVA, never overlapping.</summary>
    internal List<IoasArea> Areas { get; } = [];

    internal List<(ulong Start, ulong Last)> Allowed { get; private set; } = [];

    /// <summary>The paging HWPTs (IOMMU domains) of this IOAS.</summary>
    internal List<HwptObject> Hwpts { get; } = [];

    internal bool DisableLargePages { get; private set; }

    /// <summary>1 with no domain; the domains' smallest page (4 KiB) with one; PAGE_SIZE with huge pages disabled.</summary>
    internal ulong IovaAlignment => AlignmentFor(Hwpts.Count > 0, DisableLargePages);

    private static ulong AlignmentFor(bool domains, bool disableLargePages) => domains || disableLargePages ? SimulatedVtd.PageSize : 1;

    /// <summary>The index of the area containing <paramref name="iova"/>, or -1.</summary>
    internal int IndexOfArea(ulong iova)
    {
        int lo = 0, hi = Areas.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            IoasArea area = Areas[mid];
            if (iova < area.Iova)
            {
                hi = mid - 1;
            }
            else if (iova > area.Last)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }
        return -1;
    }

    /// <summary>The first area (lowest IOVA) intersecting [start, last], or -1.</summary>
    private int FirstAreaIn(ulong start, ulong last)
    {
        for (int i = 0; i < Areas.Count; i++)
        {
            if (Areas[i].Last >= start)
            {
                return Areas[i].Iova <= last ? i : -1;
            }
        }
        return -1;
    }

    private bool IntersectsReserved(ulong start, ulong last)
    {
        foreach ((ulong Start, ulong Last, object _) r in _reserved)
        {
            if (r.Start <= last && r.Last >= start)
            {
                return true;
            }
        }
        return false;
    }

    private bool IntersectsArea(ulong start, ulong last) => FirstAreaIn(start, last) >= 0;

    private bool IntersectsAllowed(ulong start, ulong last)
    {
        foreach ((ulong Start, ulong Last) r in Allowed)
        {
            if (r.Start <= last && r.Last >= start)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The holes of the reserved set over [0, 2^64−1], ascending: what IOVA_RANGES reports.</summary>
    internal List<(ulong Start, ulong Last)> UsableRanges()
    {
        var intervals = _reserved.Select(r => (r.Start, r.Last)).ToList();
        return Holes(intervals, 0, ulong.MaxValue);
    }

    /// <summary>The holes of <paramref name="used"/> within [lo, hi].</summary>
    private static List<(ulong Start, ulong Last)> Holes(List<(ulong Start, ulong Last)> used, ulong lo, ulong hi)
    {
        used.Sort((a, b) => a.Start.CompareTo(b.Start));
        var holes = new List<(ulong, ulong)>();
        ulong cursor = lo;
        foreach ((ulong start, ulong last) in used)
        {
            if (last < cursor)
            {
                continue;
            }
            if (start > hi)
            {
                break;
            }
            if (start > cursor)
            {
                holes.Add((cursor, start - 1));
            }
            if (last >= hi)
            {
                return holes;
            }
            cursor = last + 1;
        }
        holes.Add((cursor, hi));
        return holes;
    }

    /// <summary>Reserves [start, last] for <paramref name="owner"/> (iopt_reserve_iova): <c>EADDRINUSE</c> when a
    /// mapping or an allowed range intersects it.</summary>
    internal int Reserve(ulong start, ulong last, object owner)
    {
        if (IntersectsArea(start, last) || IntersectsAllowed(start, last))
        {
            return -(int)Errno.EADDRINUSE;
        }
        int index = 0;
        while (index < _reserved.Count && _reserved[index].Start <= start)
        {
            index++;
        }
        _reserved.Insert(index, (start, last, owner));
        return 0;
    }

    internal void RemoveReserved(object owner) => _reserved.RemoveAll(r => ReferenceEquals(r.Owner, owner));

    /// <summary>Fails with <c>EADDRINUSE</c> when an area is not aligned to <paramref name="alignment"/> (iopt_check_iova_alignment).</summary>
    private int CheckAreasAligned(ulong alignment)
        => Areas.Exists(a => a.Iova % alignment != 0 || a.Length % alignment != 0 || a.UserVa % SimulatedVtd.PageSize % alignment != 0)
            ? -(int)Errno.EADDRINUSE
            : 0;

    /// <summary>Whether pages can be pinned into a domain (pin_user_pages_fast): the first page of the address space is
    /// never mapped, and nothing at or above x86-64's TASK_SIZE is user memory (EFAULT either way).</summary>
    private static bool Pinnable(ulong userVa, ulong length)
        => userVa >= SimulatedVtd.PageSize && userVa <= UserAddressLimit && length <= UserAddressLimit - userVa;

    // TASK_SIZE on x86-64 with 4-level page tables: the end of the user address space.
    private const ulong UserAddressLimit = 0x7fff_ffff_f000;

    /// <summary>iopt_table_add_domain (iommufd_device_attach): alignment, aperture reservation, then mapping every area.</summary>
    internal int AddDomain(HwptObject hwpt)
    {
        ulong alignment = AlignmentFor(domains: true, DisableLargePages);
        if (alignment != IovaAlignment)
        {
            int rc = CheckAreasAligned(alignment);
            if (rc < 0)
            {
                return rc;
            }
        }
        int reserved = Reserve(SimulatedVtd.ApertureEnd + 1, ulong.MaxValue, hwpt);
        if (reserved < 0)
        {
            return reserved;
        }
        if (Areas.Exists(a => !Pinnable(a.UserVa, a.Length)))
        {
            RemoveReserved(hwpt);
            return -UserMemoryFault;
        }
        if (Hwpts.Count == 0 && !PinAll())
        {
            // iopt_fill_domain: the first domain pins every area; over RLIMIT_MEMLOCK the attach fails and unwinds.
            RemoveReserved(hwpt);
            return -(int)Errno.ENOMEM;
        }
        Hwpts.Add(hwpt);
        return 0;
    }

    /// <summary>Pins every area (the first domain arrived); on failure nothing stays pinned.</summary>
    private bool PinAll()
    {
        foreach (IoasArea area in Areas)
        {
            if (!area.Pages.Pin(area))
            {
                UnpinAll();
                return false;
            }
        }
        return true;
    }

    private void UnpinAll()
    {
        foreach (IoasArea area in Areas)
        {
            area.Pages.Unpin(area);
        }
    }

    /// <summary>The IOAS object goes (DESTROY or the context's release): its areas are removed and unpinned.</summary>
    internal void Destroy()
    {
        UnpinAll();
        foreach (IoasArea area in Areas)
        {
            context.ReturnArea(area);
        }
        Areas.Clear();
    }

    private const int UserMemoryFault = (int)Errno.EFAULT;

    internal void RemoveDomain(HwptObject hwpt)
    {
        Hwpts.Remove(hwpt);
        RemoveReserved(hwpt);
        if (Hwpts.Count == 0)
        {
            // The last domain went: nothing holds the pages pinned any more (no in-kernel access is modelled).
            UnpinAll();
        }
    }

    /// <summary>IOMMU_OPTION HUGE_PAGES = 0 (iopt_disable_large_pages).</summary>
    internal int DisableHugePages()
    {
        if (DisableLargePages)
        {
            return 0;
        }
        if (Hwpts.Count > 0 && Areas.Count > 0)
        {
            return -EINVAL;
        }
        ulong alignment = AlignmentFor(Hwpts.Count > 0, disableLargePages: true);
        if (alignment > IovaAlignment)
        {
            int rc = CheckAreasAligned(alignment);
            if (rc < 0)
            {
                return rc;
            }
        }
        DisableLargePages = true;
        return 0;
    }

    internal void EnableHugePages() => DisableLargePages = false;

    /// <summary>IOMMU_IOAS_ALLOW_IOVAS after the ranges were validated: <c>EADDRINUSE</c> when one is reserved.</summary>
    internal int SetAllowed(List<(ulong Start, ulong Last)> ranges)
    {
        if (ranges.Exists(r => IntersectsReserved(r.Start, r.Last)))
        {
            return -(int)Errno.EADDRINUSE;
        }
        ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
        Allowed = ranges;
        return 0;
    }

    /// <summary>
    /// The common part of MAP, COPY and the compat MAP_DMA (iopt_alloc_area_pages, iommufd_ioas_map): chooses or checks
    /// the IOVA, then inserts one area per piece, contiguous from the chosen IOVA.
    /// </summary>
    internal int Map(ref ulong iova, bool fixedIova, ReadOnlySpan<PagesPiece> pieces, ulong length, bool readable, bool writable)
    {
        ulong alignment = IovaAlignment;
        if (length == 0 || length % alignment != 0)
        {
            return -EINVAL;
        }
        if (!fixedIova)
        {
            int rc = AllocateIova(pieces[0].UserVa, length, out iova);
            if (rc < 0)
            {
                return rc;
            }
        }
        else
        {
            if (iova % alignment != 0)
            {
                return -EINVAL;
            }
            if (iova > ulong.MaxValue - (length - 1))
            {
                return -(int)Errno.EOVERFLOW;
            }
            if (IntersectsReserved(iova, iova + length - 1))
            {
                return -EINVAL;
            }
            if (IntersectsArea(iova, iova + length - 1))
            {
                return -(int)Errno.EEXIST;
            }
        }
        foreach (PagesPiece piece in pieces)
        {
            if (writable && !piece.PagesWritable)
            {
                return -(int)Errno.EPERM;
            }
            if (piece.UserVa % SimulatedVtd.PageSize % alignment != 0)
            {
                return -EINVAL;
            }
        }
        if (Hwpts.Count > 0)
        {
            foreach (PagesPiece piece in pieces)
            {
                if (!Pinnable(piece.UserVa, piece.Length))
                {
                    return -UserMemoryFault;
                }
            }
        }
        ulong next = iova;
        List<IoasArea> added = _added;
        added.Clear();
        foreach (PagesPiece piece in pieces)
        {
            // iopt_alloc_pages: a MAP gets new pages in the context's accounting mode; COPY shares the source's.
            IoptPages pages = piece.Pages ?? context.RentPages(perUser: !context.AccountPerProcess);
            IoasArea area = context.RentArea().Set(next, next + piece.Length - 1, piece.UserVa, readable, writable, piece.PagesWritable, pages);
            Insert(area);
            added.Add(area);
            next += piece.Length;
        }
        int result = 0;
        if (Hwpts.Count > 0)
        {
            // iopt_fill_domains_pages: with a domain the pages are pinned (and charged) now; over the limit the
            // whole map unwinds with ENOMEM.
            foreach (IoasArea area in added)
            {
                if (!area.Pages.Pin(area))
                {
                    foreach (IoasArea undo in added)
                    {
                        undo.Pages.Unpin(undo);
                        Areas.Remove(undo);
                        context.ReturnArea(undo);
                    }
                    result = -(int)Errno.ENOMEM;
                    break;
                }
            }
        }
        added.Clear();
        return result;
    }

    /// <summary>Inserts <paramref name="area"/> after every area starting at or below its IOVA (binary search).</summary>
    private void Insert(IoasArea area)
    {
        int lo = 0, hi = Areas.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (Areas[mid].Iova > area.Iova)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }
        Areas.Insert(lo, area);
    }

    /// <summary>iopt_alloc_iova (drivers/iommu/iommufd/io_pagetable.c): the automatic IOVA selection of IOMMU_IOAS_MAP.</summary>
    private int AllocateIova(ulong userVa, ulong length, out ulong iova)
    {
        iova = 0;
        if (length >= ulong.MaxValue / 2)
        {
            return -(int)Errno.EOVERFLOW;
        }
        ulong pageOffset = userVa % SimulatedVtd.PageSize;
        ulong alignment = RoundUpPowerOfTwo(length);
        if (userVa != 0)
        {
            alignment = Math.Min(alignment, 1UL << System.Numerics.BitOperations.TrailingZeroCount(userVa));
        }
        if (alignment >= SimulatedVtd.HugePageSize)
        {
            alignment = SimulatedVtd.HugePageSize;
        }
        if (alignment < IovaAlignment)
        {
            return -EINVAL;
        }
        const ulong Lo = SimulatedVtd.PageSize, Hi = ulong.MaxValue - SimulatedVtd.PageSize;
        if (Allowed.Count == 0)
        {
            return FindInSpan(Lo, Hi, length, alignment, pageOffset, out iova) ? 0 : -(int)Errno.ENOSPC;
        }
        foreach ((ulong start, ulong last) in Allowed)
        {
            if (last >= Lo && start <= Hi && FindInSpan(Math.Max(start, Lo), Math.Min(last, Hi), length, alignment, pageOffset, out iova))
            {
                return 0;
            }
        }
        iova = 0;
        return -(int)Errno.ENOSPC;
    }

    /// <summary>
    /// The first fit in the span [<paramref name="spanStart"/>, <paramref name="spanLast"/>]: the span's start is
    /// aligned, then the holes the used set (reserved ranges and areas) leaves there are tried in ascending order — the
    /// holes <see cref="Holes"/> would list, walked without building a list (both sets are kept sorted by start and
    /// merged on the fly).
    /// </summary>
    private bool FindInSpan(ulong spanStart, ulong spanLast, ulong length, ulong alignment, ulong pageOffset, out ulong iova)
    {
        if (!FitsIn(spanStart, spanLast, length, alignment, pageOffset, out ulong cursor))
        {
            iova = 0;
            return false;
        }
        int r = 0, a = 0;
        while (true)
        {
            ulong start, last;
            if (r < _reserved.Count && (a >= Areas.Count || _reserved[r].Start <= Areas[a].Iova))
            {
                (start, last, _) = _reserved[r++];
            }
            else if (a < Areas.Count)
            {
                IoasArea area = Areas[a++];
                (start, last) = (area.Iova, area.Last);
            }
            else
            {
                break;
            }
            if (last < cursor)
            {
                continue;
            }
            if (start > spanLast)
            {
                break;
            }
            if (start > cursor && FitsIn(cursor, start - 1, length, alignment, pageOffset, out iova))
            {
                return true;
            }
            if (last >= spanLast)
            {
                iova = 0;
                return false;
            }
            cursor = last + 1;
        }
        if (FitsIn(cursor, spanLast, length, alignment, pageOffset, out iova))
        {
            return true;
        }
        iova = 0;
        return false;
    }

    private static bool FitsIn(ulong start, ulong last, ulong length, ulong alignment, ulong pageOffset, out ulong aligned)
    {
        aligned = 0;
        if (start > ulong.MaxValue - (alignment - 1))
        {
            return false;
        }
        aligned = ((start + alignment - 1) & ~(alignment - 1)) | pageOffset;
        return aligned < last && last - aligned >= length - 1;
    }

    private static ulong RoundUpPowerOfTwo(ulong value) => System.Numerics.BitOperations.RoundUpToPowerOf2(value);

    /// <summary>
    /// iopt_unmap_iova_range (iommufd_ioas_unmap): removes whole areas inside [start, last] in ascending order; an area that
    /// sticks out stops with <c>ENOENT</c>, leaving the earlier ones removed; nothing mapped is <c>ENOENT</c>.
    /// </summary>
    internal int Unmap(ulong start, ulong last, out ulong unmapped)
    {
        unmapped = 0;
        int index;
        while ((index = FirstAreaIn(start, last)) >= 0)
        {
            IoasArea area = Areas[index];
            if (area.Iova < start || area.Last > last)
            {
                return -(int)Errno.ENOENT;
            }
            Areas.RemoveAt(index);
            area.Pages.Unpin(area);
            unmapped += area.Length;
            context.ReturnArea(area);
        }
        return unmapped > 0 ? 0 : -(int)Errno.ENOENT;
    }

    /// <summary>iopt_unmap_all: like <see cref="Unmap"/> over everything, but an empty IOAS succeeds.</summary>
    internal void UnmapAll(out ulong unmapped)
    {
        unmapped = 0;
        foreach (IoasArea area in Areas)
        {
            unmapped += area.Length;
            area.Pages.Unpin(area);
            context.ReturnArea(area);
        }
        Areas.Clear();
    }

    /// <summary>iopt_area_split: cuts the area containing <paramref name="iova"/> after it (type1 v1 emulation).</summary>
    internal int CutAfter(ulong iova)
    {
        int index = IndexOfArea(iova);
        if (index < 0 || Areas[index].Last == iova)
        {
            return 0;
        }
        IoasArea area = Areas[index];
        ulong newStart = iova + 1;
        ulong alignment = IovaAlignment;
        ulong newUserVa = area.UserVa + (newStart - area.Iova);
        if (newStart % alignment != 0 || newUserVa % SimulatedVtd.PageSize % alignment != 0)
        {
            return -EINVAL;
        }
        IoasArea right = context.RentArea().Set(newStart, area.Last, newUserVa, area.Readable, area.Writable, area.PagesWritable, area.Pages);
        area.Last = iova;
        if (area.Pinned)
        {
            area.Pages.AddSplit(right);
        }
        Areas.Insert(index + 1, right);
        return 0;
    }

    /// <summary>iopt_get_pages for COPY (iommufd_ioas_copy): the pieces of [start, last] when it is fully and contiguously mapped.</summary>
    internal int GetPieces(ulong start, ulong last, List<PagesPiece> pieces)
    {
        int index = IndexOfArea(start);
        if (index < 0)
        {
            return -(int)Errno.ENOENT;
        }
        ulong cursor = start;
        for (int i = index; i < Areas.Count; i++)
        {
            IoasArea area = Areas[i];
            if (area.Iova != cursor && i != index)
            {
                return -(int)Errno.ENOENT;
            }
            ulong pieceLast = Math.Min(area.Last, last);
            pieces.Add(new PagesPiece(area.UserVa + (cursor - area.Iova), pieceLast - cursor + 1, area.PagesWritable, area.Pages));
            if (pieceLast == last)
            {
                return 0;
            }
            cursor = pieceLast + 1;
        }
        return -(int)Errno.ENOENT;
    }
}
