// SPDX-License-Identifier: MIT

namespace Vfio.Core.Tests;

/// <summary>
/// A deliberately naive model of <see cref="IovaAllocator"/> for differential tests: one flag per granule page of a
/// bounded space, linear scans for everything, and the allocator's documented policy written out directly.
/// </summary>
internal sealed class IovaAllocatorModel
{
    private readonly ulong _granule;
    private readonly bool[] _free;
    private readonly Dictionary<ulong, ulong> _allocations = [];

    /// <param name="limit">The model covers [0, limit); every usable range must end below it.</param>
    public IovaAllocatorModel(IovaRange[] usable, IovaRange[] reserved, ulong granule, ulong limit)
    {
        _granule = granule;
        _free = new bool[limit / granule];
        IovaRange[] sorted = [.. usable.OrderBy(r => r.Start)];
        for (int page = 0; page < _free.Length; page++)
        {
            var bytes = new IovaRange((ulong)page * granule, (ulong)page * granule + granule - 1);
            _free[page] = Covered(bytes, sorted) && !reserved.Any(r => r.Overlaps(bytes));
        }
    }

    public List<ulong> Live { get; } = [];

    public int Count => _allocations.Count;

    public UInt128 AllocatedBytes => _allocations.Aggregate(UInt128.Zero, (sum, a) => sum + (a.Value - a.Key + 1));

    public UInt128 FreeBytes => (UInt128)(ulong)_free.Count(f => f) * _granule;

    public UInt128 LargestFreeBlock => FreeBlocks().Select(b => b.Size).DefaultIfEmpty(UInt128.Zero).Max();

    public bool TryAllocate(ulong size, ulong alignment, ulong dmaMask, out ulong iova)
    {
        ulong extent = (size - 1) | (_granule - 1);
        ulong alignMask = Math.Max(alignment, _granule) - 1;
        List<IovaRange> blocks = FreeBlocks();
        // The policy: the first block of at least the size, then the first of at least size + alignment - granule.
        IovaRange? first = blocks.Cast<IovaRange?>().FirstOrDefault(b => b!.Value.Last - b.Value.Start >= extent);
        ulong slack = alignMask - (_granule - 1);
        IovaRange? guaranteed = slack == 0 || extent > ulong.MaxValue - slack
            ? null
            : blocks.Cast<IovaRange?>().FirstOrDefault(b => b!.Value.Last - b.Value.Start >= extent + slack);
        foreach (IovaRange? block in new[] { first, guaranteed })
        {
            if (block is { } b && b.Start <= dmaMask)
            {
                ulong limit = Math.Min(b.Last, dmaMask);
                UInt128 aligned = ((UInt128)b.Start + alignMask) & ~(UInt128)alignMask;
                if (aligned <= limit && limit - (ulong)aligned >= extent)
                {
                    iova = (ulong)aligned;
                    Take(iova, iova + extent);
                    return true;
                }
            }
        }
        iova = 0;
        return false;
    }

    public bool TryClaim(ulong iova, ulong size)
    {
        ulong last = iova + size - 1;
        for (ulong address = iova; address <= last; address += _granule)
        {
            ulong page = address / _granule;
            if (page >= (ulong)_free.Length || !_free[page])
            {
                return false;
            }
        }
        Take(iova, last);
        return true;
    }

    public bool TryFree(ulong iova, out IovaRange allocation)
    {
        if (!_allocations.Remove(iova, out ulong last))
        {
            allocation = default;
            return false;
        }
        Live.Remove(iova);
        for (ulong page = iova / _granule; page <= last / _granule; page++)
        {
            _free[page] = true;
        }
        allocation = new IovaRange(iova, last);
        return true;
    }

    public bool TryFind(ulong iova, out IovaRange allocation)
    {
        foreach ((ulong start, ulong last) in _allocations)
        {
            if (start <= iova && iova <= last)
            {
                allocation = new IovaRange(start, last);
                return true;
            }
        }
        allocation = default;
        return false;
    }

    public List<IovaRange> Allocations() => [.. _allocations.Select(a => new IovaRange(a.Key, a.Value)).OrderBy(a => a.Start)];

    public List<IovaRange> FreeBlocks()
    {
        var blocks = new List<IovaRange>();
        int page = 0;
        while (page < _free.Length)
        {
            if (!_free[page])
            {
                page++;
                continue;
            }
            int end = page;
            while (end + 1 < _free.Length && _free[end + 1])
            {
                end++;
            }
            blocks.Add(new IovaRange((ulong)page * _granule, (ulong)end * _granule + _granule - 1));
            page = end + 1;
        }
        return blocks;
    }

    private void Take(ulong start, ulong last)
    {
        for (ulong page = start / _granule; page <= last / _granule; page++)
        {
            _free[page] = false;
        }
        _allocations.Add(start, last);
        Live.Add(start);
    }

    private static bool Covered(IovaRange bytes, IovaRange[] sortedUsable)
    {
        ulong next = bytes.Start;
        foreach (IovaRange range in sortedUsable)
        {
            if (range.Start <= next && range.Last >= next)
            {
                if (range.Last >= bytes.Last)
                {
                    return true;
                }
                next = range.Last + 1;
            }
        }
        return false;
    }
}
