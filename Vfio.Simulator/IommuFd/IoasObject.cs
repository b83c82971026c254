// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// An IOAS (io_pagetable): its areas, the reserved IOVA set (domain apertures and devices' reserved regions), the
/// allowed list, its alignment and its domains (kernel-uapi-6.12.md §8.3–§8.9, §14 item 7).
/// </summary>
internal sealed class IoasObject(IommuFdFile context) : IommuFdObject
{
    private const int EINVAL = (int)Errno.EINVAL;
    private readonly List<(ulong Start, ulong Last, object Owner)> _reserved = [];

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

    private bool IntersectsReserved(ulong start, ulong last) => _reserved.Exists(r => r.Start <= last && r.Last >= start);

    private bool IntersectsArea(ulong start, ulong last) => FirstAreaIn(start, last) >= 0;

    private bool IntersectsAllowed(ulong start, ulong last) => Allowed.Exists(r => r.Start <= last && r.Last >= start);

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
            return -IommuFdErrno.EADDRINUSE;
        }
        _reserved.Add((start, last, owner));
        return 0;
    }

    internal void RemoveReserved(object owner) => _reserved.RemoveAll(r => ReferenceEquals(r.Owner, owner));

    /// <summary>Fails with <c>EADDRINUSE</c> when an area is not aligned to <paramref name="alignment"/> (iopt_check_iova_alignment).</summary>
    private int CheckAreasAligned(ulong alignment)
        => Areas.Exists(a => a.Iova % alignment != 0 || a.Length % alignment != 0 || a.UserVa % SimulatedVtd.PageSize % alignment != 0)
            ? -IommuFdErrno.EADDRINUSE
            : 0;

    /// <summary>Pins every area's pages into a domain: the first page of the address space is never readable (EFAULT).</summary>
    private static bool Pinnable(ulong userVa) => userVa >= SimulatedVtd.PageSize;

    /// <summary>iopt_table_add_domain (§8.9): alignment, aperture reservation, then mapping every area.</summary>
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
        if (Areas.Exists(a => !Pinnable(a.UserVa)))
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
            return -IommuFdErrno.EADDRINUSE;
        }
        ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
        Allowed = ranges;
        return 0;
    }

    /// <summary>
    /// The common part of MAP, COPY and the compat MAP_DMA (iopt_alloc_area_pages, §8.5 steps 7–10): chooses or checks
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
                if (!Pinnable(piece.UserVa))
                {
                    return -UserMemoryFault;
                }
            }
        }
        ulong next = iova;
        var added = new List<IoasArea>(pieces.Length);
        foreach (PagesPiece piece in pieces)
        {
            var area = new IoasArea
            {
                Iova = next,
                Last = next + piece.Length - 1,
                UserVa = piece.UserVa,
                Readable = readable,
                Writable = writable,
                PagesWritable = piece.PagesWritable,
                // iopt_alloc_pages: a MAP gets new pages in the context's accounting mode; COPY shares the source's.
                Pages = piece.Pages ?? new IoptPages(context.Kernel, perUser: !context.AccountPerProcess),
            };
            Insert(area);
            added.Add(area);
            next += piece.Length;
        }
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
                    }
                    return -(int)Errno.ENOMEM;
                }
            }
        }
        return 0;
    }

    private void Insert(IoasArea area)
    {
        int index = Areas.FindIndex(a => a.Iova > area.Iova);
        Areas.Insert(index < 0 ? Areas.Count : index, area);
    }

    /// <summary>iopt_alloc_iova (§8.5 "Automatic IOVA selection").</summary>
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
        List<(ulong Start, ulong Last)> spans = Allowed.Count == 0
            ? [(Lo, Hi)]
            : [.. Allowed.Where(r => r.Last >= Lo && r.Start <= Hi).Select(r => (Math.Max(r.Start, Lo), Math.Min(r.Last, Hi)))];
        var used = _reserved.Select(r => (r.Start, r.Last)).Concat(Areas.Select(a => (a.Iova, a.Last))).ToList();
        foreach ((ulong spanStart, ulong spanLast) in spans)
        {
            if (!FitsIn(spanStart, spanLast, length, alignment, pageOffset, out ulong alignedSpanStart))
            {
                continue;
            }
            foreach ((ulong holeStart, ulong holeLast) in Holes([.. used], alignedSpanStart, spanLast))
            {
                if (FitsIn(holeStart, holeLast, length, alignment, pageOffset, out ulong start))
                {
                    iova = start;
                    return 0;
                }
            }
        }
        return -(int)Errno.ENOSPC;
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
    /// iopt_unmap_iova_range (§8.8 steps 6–8): removes whole areas inside [start, last] in ascending order; an area that
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
        var right = new IoasArea
        {
            Iova = newStart,
            Last = area.Last,
            UserVa = newUserVa,
            Readable = area.Readable,
            Writable = area.Writable,
            PagesWritable = area.PagesWritable,
            Pages = area.Pages,
        };
        area.Last = iova;
        if (area.Pinned)
        {
            area.Pages.AddSplit(right);
        }
        Areas.Insert(index + 1, right);
        return 0;
    }

    /// <summary>iopt_get_pages for COPY (§8.7 step 5): the pieces of [start, last] when it is fully and contiguously mapped.</summary>
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
