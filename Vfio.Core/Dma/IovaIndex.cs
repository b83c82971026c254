// SPDX-License-Identifier: MIT
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vfio.Core;

/// <summary>Ordered disjoint inclusive ranges addressed by node handles (<see cref="IovaTree"/>, <see cref="IovaIndex"/>).</summary>
internal interface IOrderedRanges
{
    /// <summary>The range with the smallest start at or above <paramref name="key"/>, or 0 (nil).</summary>
    int Ceiling(ulong key);

    ulong StartOf(int node);

    ulong LastOf(int node);
}

/// <summary>What a DMA space keeps with each allocation of its IOVA allocator besides the range: the mapping's host
/// address, access and kind (so that the space needs no book of its own).</summary>
internal readonly record struct DmaMappingData(nint HostAddress, DmaAccess Access, DmaSectionKind Kind);

/// <summary>
/// The allocator's index of live allocations: disjoint inclusive ranges in a sorted array of blocks (a two-level
/// B+-tree). Each block holds up to <see cref="BlockSize"/> ranges sorted by start, in two parallel arrays (starts,
/// lasts); a top array holds the first start of every block in address order. A look-up is a binary search of the
/// top array (1 KiB of starts per 128 blocks, which stays in cache) and then of one block's 512 bytes of starts, so a
/// random probe over 65,536 ranges touches a handful of cache lines, where a binary tree of that size misses on most
/// of its ~17 levels.
/// </summary>
/// <remarks>
/// Insert and remove shift at most one block's entries (and, when a block splits, empties or merges, the top array),
/// so every operation is O(log n) searches plus O(B + n/B) moves of contiguous memory. A full block splits in two
/// halves; after a removal a block merges with a neighbour when both fit in half a block, so splits and merges never
/// alternate and there are at most about 4n/B + 2 blocks. Storage is array-backed and grows by doubling only when
/// more ranges are live than ever before; the steady state allocates nothing. A node handle is the storage slot + 1
/// (0 is nil) and stays valid only until the next insert or remove. Not thread-safe.
/// </remarks>
internal sealed class IovaIndex : IOrderedRanges
{
    /// <summary>The null handle.</summary>
    public const int Nil = 0;

    /// <summary>Ranges per block.</summary>
    public const int BlockSize = 1 << BlockShift;

    private const int BlockShift = 6;

    private ulong[] _starts;
    private ulong[] _lasts;
    // Each range's mapping data, moved along with its start and last.
    private DmaMappingData[] _data;
    private int[] _blockCounts;
    // Blocks in address order: their ids and their first starts.
    private int[] _order;
    private ulong[] _firsts;
    private int _blocks;
    // Unused block ids (a stack).
    private int[] _spare;
    private int _spareCount;
    private int _count;
    private long _visits;

    public IovaIndex(int capacity)
    {
        int blocks = BlocksFor(capacity);
        _starts = new ulong[blocks << BlockShift];
        _lasts = new ulong[blocks << BlockShift];
        _data = new DmaMappingData[blocks << BlockShift];
        _blockCounts = new int[blocks];
        _order = new int[blocks];
        _firsts = new ulong[blocks];
        _spare = new int[blocks];
        for (int b = blocks - 1; b >= 0; b--)
        {
            _spare[_spareCount++] = b;
        }
    }

    /// <summary>Live ranges.</summary>
    public int Count => _count;

    /// <summary>Binary-search steps and block moves since creation (the allocator's operation count).</summary>
    public long Visits => _visits;

    public ulong StartOf(int node) => _starts[node - 1];

    public ulong LastOf(int node) => _lasts[node - 1];

    public ref readonly DmaMappingData DataOf(int node) => ref _data[node - 1];

    /// <summary>Grows the storage so that <paramref name="count"/> ranges fit without another allocation.</summary>
    public void EnsureCapacity(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        int blocks = BlocksFor(count);
        if (blocks > _blockCounts.Length)
        {
            Grow(blocks);
        }
    }

    /// <summary>The range with the greatest start at or below <paramref name="key"/>, or <see cref="Nil"/>.</summary>
    /// <remarks>The look-up path: a branch-free binary search of the top array (its loads depend on each other but
    /// stay in cache), then a branch-free count of the block's starts at or below the key, whose loads are
    /// independent (the block's few cache lines are fetched in parallel, not one miss after another).</remarks>
    public int Floor(ulong key)
    {
        int blocks = _blocks;
        ref ulong firsts = ref MemoryMarshal.GetArrayDataReference(_firsts);
        if (blocks == 0 || firsts > key)
        {
            return Nil;
        }
        int position = 0;
        while (blocks > 1)
        {
            _visits++;
            int half = blocks >> 1;
            position = Unsafe.Add(ref firsts, position + half) <= key ? position + half : position;
            blocks -= half;
        }
        int block = _order[position];
        int from = block << BlockShift;
        int count = _blockCounts[block];
        _visits++;
        PrefetchLasts(from, count);
        return from + CountAtOrBelow(from, count, key);
    }

    // The floor's last address is read right after the count, from another array: touch the block's lines of it now
    // (volatile reads, which the JIT keeps although their values are unused), so that their misses overlap the starts'
    // instead of following them. Safe code has no prefetch instruction; a load the core does not wait on does as well.
    private void PrefetchLasts(int from, int count)
    {
        ulong[] lasts = _lasts;
        for (int i = from; i < from + count; i += 64 / sizeof(ulong))
        {
            _ = Volatile.Read(ref lasts[i]);
        }
    }

    /// <summary>The range with the smallest start at or above <paramref name="key"/>, or <see cref="Nil"/>.</summary>
    public int Ceiling(ulong key)
    {
        int position = Math.Max(UpperBound(_firsts, 0, _blocks, key) - 1, 0);
        for (; position < _blocks; position++)
        {
            int start = _order[position] << BlockShift;
            int end = start + _blockCounts[_order[position]];
            int slot = LowerBound(_starts, start, end, key);
            if (slot < end)
            {
                return slot + 1;
            }
        }
        return Nil;
    }

    /// <summary>Adds [<paramref name="start"/>, <paramref name="last"/>] with its <paramref name="data"/>; the caller
    /// keeps the ranges disjoint. Returns its node handle and the position of its block (valid until the next insert
    /// or remove), which <see cref="RemoveAt"/> takes without searching.</summary>
    public int Insert(ulong start, ulong last, in DmaMappingData data, out int position)
    {
        _visits++;
        if (_blocks == 0)
        {
            int first = TakeBlock();
            _order[0] = first;
            _firsts[0] = start;
            _blocks = 1;
        }
        position = _blocks - 1;
        int block = _order[position];
        int baseSlot = block << BlockShift;
        int slot;
        int tail = _blockCounts[block];
        if (tail == 0 || (tail < BlockSize && _starts[baseSlot + tail - 1] < start))
        {
            // Above every range (ascending maps, a map after the unmap of the highest one): the end of the last block.
            slot = tail;
        }
        else
        {
            position = Math.Max(UpperBound(_firsts, 0, _blocks, start) - 1, 0);
            block = _order[position];
            baseSlot = block << BlockShift;
            slot = LowerBound(_starts, baseSlot, baseSlot + _blockCounts[block], start) - baseSlot;
        }
        if (_blockCounts[block] == BlockSize)
        {
            // Split: the upper half moves to a new block right after this one.
            int upper = TakeBlock();
            const int Half = BlockSize / 2;
            Array.Copy(_starts, baseSlot + Half, _starts, upper << BlockShift, Half);
            Array.Copy(_lasts, baseSlot + Half, _lasts, upper << BlockShift, Half);
            Array.Copy(_data, baseSlot + Half, _data, upper << BlockShift, Half);
            _blockCounts[block] = Half;
            _blockCounts[upper] = Half;
            InsertBlock(position + 1, upper);
            if (slot > Half)
            {
                position++;
                block = upper;
                baseSlot = upper << BlockShift;
                slot -= Half;
            }
        }
        int count = _blockCounts[block];
        if (slot < count)
        {
            Array.Copy(_starts, baseSlot + slot, _starts, baseSlot + slot + 1, count - slot);
            Array.Copy(_lasts, baseSlot + slot, _lasts, baseSlot + slot + 1, count - slot);
            Array.Copy(_data, baseSlot + slot, _data, baseSlot + slot + 1, count - slot);
        }
        _starts[baseSlot + slot] = start;
        _lasts[baseSlot + slot] = last;
        _data[baseSlot + slot] = data;
        _blockCounts[block] = count + 1;
        if (slot == 0)
        {
            _firsts[position] = start;
        }
        _count++;
        return baseSlot + slot + 1;
    }

    /// <summary>The node of the range that starts exactly at <paramref name="start"/> and its block's position, or
    /// <see cref="Nil"/>.</summary>
    public int FindExact(ulong start, out int position)
    {
        _visits++;
        position = UpperBound(_firsts, 0, _blocks, start) - 1;
        if (position < 0)
        {
            return Nil;
        }
        int baseSlot = _order[position] << BlockShift;
        int end = baseSlot + _blockCounts[_order[position]];
        int slot = LowerBound(_starts, baseSlot, end, start);
        return slot < end && _starts[slot] == start ? slot + 1 : Nil;
    }

    /// <summary>True when <paramref name="node"/> lies in the block at <paramref name="position"/> (tests only).</summary>
    internal bool IsAt(int position, int node) => position >= 0 && position < _blocks && _order[position] == (node - 1) >> BlockShift && node - 1 - ((node - 1) >> BlockShift << BlockShift) < _blockCounts[_order[position]];

    /// <summary>Removes <paramref name="node"/>, whose block is at <paramref name="position"/> (as
    /// <see cref="FindExact"/> or <see cref="Insert"/> returned them, with no insert or remove since).</summary>
    public void RemoveAt(int position, int node)
    {
        _visits++;
        int block = _order[position];
        int baseSlot = block << BlockShift;
        int count = _blockCounts[block];
        int slot = node - 1 - baseSlot;
        if (slot < count - 1)   // removing the last entry (the map-then-unmap pattern's usual case) moves nothing
        {
            Array.Copy(_starts, baseSlot + slot + 1, _starts, baseSlot + slot, count - slot - 1);
            Array.Copy(_lasts, baseSlot + slot + 1, _lasts, baseSlot + slot, count - slot - 1);
            Array.Copy(_data, baseSlot + slot + 1, _data, baseSlot + slot, count - slot - 1);
        }
        _blockCounts[block] = --count;
        _count--;
        if (count == 0)
        {
            RemoveBlock(position);
            return;
        }
        if (slot == 0)
        {
            _firsts[position] = _starts[baseSlot];
        }
        // Merge with a neighbour when both fit in half a block (the later block moves into the earlier one).
        if (position + 1 < _blocks && count + _blockCounts[_order[position + 1]] <= BlockSize / 2)
        {
            Merge(position);
        }
        else if (position > 0 && count + _blockCounts[_order[position - 1]] <= BlockSize / 2)
        {
            Merge(position - 1);
        }
    }

    /// <summary>Checks the ordering, disjointness, block counts and first starts (tests only): O(n).</summary>
    internal void Validate()
    {
        int total = 0;
        bool any = false;
        ulong previousLast = 0;
        for (int position = 0; position < _blocks; position++)
        {
            int block = _order[position];
            int count = _blockCounts[block];
            if (count is <= 0 or > BlockSize)
            {
                throw new InvalidOperationException($"Block {block} at position {position} holds {count} ranges.");
            }
            int baseSlot = block << BlockShift;
            if (_firsts[position] != _starts[baseSlot])
            {
                throw new InvalidOperationException($"Block {block}'s first start is recorded as 0x{_firsts[position]:x}, not 0x{_starts[baseSlot]:x}.");
            }
            for (int i = baseSlot; i < baseSlot + count; i++)
            {
                if (_starts[i] > _lasts[i] || (any && _starts[i] <= previousLast))
                {
                    throw new InvalidOperationException($"Range [0x{_starts[i]:x}, 0x{_lasts[i]:x}] is out of order or overlaps.");
                }
                any = true;
                previousLast = _lasts[i];
            }
            total += count;
        }
        if (total != _count)
        {
            throw new InvalidOperationException($"The blocks hold {total} ranges, the count says {_count}.");
        }
    }

    private static int BlocksFor(int count) => (int)Math.Min((4L * count / BlockSize) + 4, Array.MaxLength / BlockSize);

    // How many of the `count` starts from slot `from` are at or below `key` (the block's starts are sorted, so this is
    // the floor's slot + 1; at least 1 when the block's first start is at or below the key).
    private int CountAtOrBelow(int from, int count, ulong key)
    {
        ref ulong starts = ref MemoryMarshal.GetArrayDataReference(_starts);
        int i = 0, found = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> keys = Vector256.Create(key);
            for (; i + 4 <= count; i += 4)
            {
                uint below = Vector256.LessThanOrEqual(Vector256.LoadUnsafe(ref starts, (nuint)(from + i)), keys).ExtractMostSignificantBits();
                found += BitOperations.PopCount(below);
            }
        }
        for (; i < count; i++)
        {
            found += Unsafe.Add(ref starts, from + i) <= key ? 1 : 0;
        }
        return found;
    }

    // The first index in [from, to) whose value is greater than key (to when none).
    private int UpperBound(ulong[] values, int from, int to, ulong key) => Bound(values, from, to, key, inclusive: true);

    // The first index in [from, to) whose value is at least key (to when none).
    private int LowerBound(ulong[] values, int from, int to, ulong key) => Bound(values, from, to, key, inclusive: false);

    private int Bound(ulong[] values, int from, int to, ulong key, bool inclusive)
    {
        int low = from, high = to;
        while (low < high)
        {
            _visits++;
            int middle = (int)((uint)(low + high) >> 1);
            if (values[middle] < key || (inclusive && values[middle] == key))
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }
        return low;
    }

    private int TakeBlock()
    {
        if (_spareCount == 0)
        {
            Grow(2 * _blockCounts.Length);
        }
        int block = _spare[--_spareCount];
        _blockCounts[block] = 0;
        return block;
    }

    private void InsertBlock(int position, int block)
    {
        _visits++;
        if (position < _blocks)
        {
            Array.Copy(_order, position, _order, position + 1, _blocks - position);
            Array.Copy(_firsts, position, _firsts, position + 1, _blocks - position);
        }
        _order[position] = block;
        _firsts[position] = _starts[block << BlockShift];
        _blocks++;
    }

    private void RemoveBlock(int position)
    {
        _visits++;
        _spare[_spareCount++] = _order[position];
        if (position < _blocks - 1)
        {
            Array.Copy(_order, position + 1, _order, position, _blocks - position - 1);
            Array.Copy(_firsts, position + 1, _firsts, position, _blocks - position - 1);
        }
        _blocks--;
    }

    // Moves the block after `position` into the block at `position`.
    private void Merge(int position)
    {
        int into = _order[position], from = _order[position + 1];
        int count = _blockCounts[into], moved = _blockCounts[from];
        Array.Copy(_starts, from << BlockShift, _starts, (into << BlockShift) + count, moved);
        Array.Copy(_lasts, from << BlockShift, _lasts, (into << BlockShift) + count, moved);
        Array.Copy(_data, from << BlockShift, _data, (into << BlockShift) + count, moved);
        _blockCounts[into] = count + moved;
        _blockCounts[from] = 0;
        RemoveBlock(position + 1);
    }

    private void Grow(int blocks)
    {
        int old = _blockCounts.Length;
        Array.Resize(ref _starts, blocks << BlockShift);
        Array.Resize(ref _lasts, blocks << BlockShift);
        Array.Resize(ref _data, blocks << BlockShift);
        Array.Resize(ref _blockCounts, blocks);
        Array.Resize(ref _order, blocks);
        Array.Resize(ref _firsts, blocks);
        Array.Resize(ref _spare, blocks);
        for (int b = blocks - 1; b >= old; b--)
        {
            _spare[_spareCount++] = b;
        }
    }
}
