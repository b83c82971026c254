// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Vfio.Core;

/// <summary>
/// Hands out I/O virtual addresses for DMA mappings and keeps track of them: allocation, fixed-address claims,
/// release with coalescing and look-up, each in O(log n) of the live allocations, inside the IOVA ranges the IOMMU
/// can translate, outside reserved ranges, and below a per-device DMA mask.
/// </summary>
/// <remarks>
/// <para>
/// <b>Address space.</b> The allocator is built from the usable ranges the kernel reports
/// (<c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c> from <c>VFIO_IOMMU_GET_INFO</c>, or <c>IOMMU_IOAS_IOVA_RANGES</c>),
/// minus reserved ranges (such as <see cref="X86MsiWindow"/>: the kernel normally leaves its reserved regions out of
/// the ranges it reports already, and subtracting one twice is harmless), with
/// each remaining range trimmed inward to the granule (the smallest IOMMU page size). Overlapping or adjacent usable
/// ranges are merged, so one allocation may span ranges the kernel reported back to back. The result is
/// <see cref="UsableRanges"/>; nothing outside it is ever handed out or claimable.
/// </para>
/// <para>
/// <b>Policy.</b> <see cref="Allocate"/> rounds the size up to the granule and returns the lowest address at which
/// the block fits, is aligned, and ends at or below the DMA mask (edu's mask is <c>0x0FFF_FFFF</c>, 28 bits). With an
/// alignment above the granule the lowest <em>guaranteed</em> fit is taken instead, to stay O(log n): the allocator
/// tries the lowest free block of at least the size, and then the lowest block of at least size + alignment -
/// granule (which always holds an aligned fit), and takes the lower of the two that fits. An aligned fit in a
/// shorter block lying between those two is passed over (a caller that needs that address can take it with
/// <see cref="Claim"/>). Without extra alignment the result is exactly the lowest fit.
/// </para>
/// <para>
/// <b>Cost.</b> Free blocks are an AVL tree keyed by address and augmented with each subtree's largest block;
/// allocations are a sorted array of 64-range blocks under a top array of their first addresses (a two-level
/// B+-tree, so a look-up over many allocations touches a few cache lines instead of a miss per tree level). Both live
/// in array-backed pools: allocate, claim, free and find each take O(log n) steps (at most 6·log2 n + 12 in the
/// operation-count test) plus moves of at most one block, and in the steady state they allocate no managed memory.
/// The pools grow by doubling when more allocations are live than ever before; <see cref="EnsureCapacity"/> grows
/// them in advance.
/// </para>
/// <para>
/// <b>Sizes.</b> Byte counts are <see cref="UInt128"/> because a 64-bit IOVA space holds 2^64 bytes, one more than a
/// <see cref="ulong"/> counts; an allocation's range is an <see cref="IovaRange"/> with inclusive bounds.
/// </para>
/// <para>
/// This is book-keeping only: allocating an IOVA maps nothing, and freeing one unmaps nothing. Not thread-safe; a
/// DMA space serializes its calls.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// // The ranges VT-d reports, and the edu device's 28-bit DMA mask.
/// var iovas = new IovaAllocator(
///     [new IovaRange(0x0, 0xfedf_ffff), new IovaRange(0xfef0_0000, 0x7f_ffff_ffff)],
///     reservedRanges: [IovaAllocator.X86MsiWindow]);
/// ulong iova = iovas.Allocate(64 * 1024, dmaMask: 0x0fff_ffff);
/// // ... map the buffer at iova, let the device DMA, unmap it ...
/// iovas.Free(iova);
/// </code>
/// </example>
public sealed class IovaAllocator
{
    private const string AllocateOperation = "allocate IOVA";
    private const string ClaimOperation = "claim IOVA";

    private readonly IovaTree _free;
    private readonly IovaIndex _allocations;
    private readonly ulong _granuleMask;
    private UInt128 _allocatedBytes;
    private UInt128 _freeBytes;
    private int _version;
    // The map-then-unmap fast path: the latest allocation or claim ("held"), while it is live (Live) or after it was
    // freed and kept out of the free tree (Pending). _heldLowest: its start is the lowest fit for its size (an
    // allocation without extra alignment) and no free space was added to the tree since, so it still is.
    private HeldState _held;
    private ulong _heldStart;
    private ulong _heldLast;
    private bool _heldLowest;
    // The allocation the index last inserted or found (by its start): its node and its block's position, valid until
    // the next removal (_knownNode Nil then), so that an unmap's look-up and free, and the map-then-unmap pattern's
    // free, search the index once or not at all.
    private ulong _knownStart;
    private int _knownNode;
    private int _knownPosition;

    private enum HeldState : byte
    {
        None,
        Live,
        Pending,
    }

    /// <summary>Creates an allocator over <paramref name="usableRanges"/> minus <paramref name="reservedRanges"/>.</summary>
    /// <param name="usableRanges">The IOVA ranges the IOMMU translates, in any order; overlapping or adjacent ranges are merged.</param>
    /// <param name="reservedRanges">Ranges never to hand out, e.g. <see cref="X86MsiWindow"/>; null for none.</param>
    /// <param name="granule">The smallest IOMMU page size (a power of two): every allocation starts and ends on it.</param>
    /// <exception cref="ArgumentNullException"><paramref name="usableRanges"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="usableRanges"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="granule"/> is not a power of two.</exception>
    public IovaAllocator(IEnumerable<IovaRange> usableRanges, IEnumerable<IovaRange>? reservedRanges = null, ulong granule = 4096)
    {
        ArgumentNullException.ThrowIfNull(usableRanges);
        if (!BitOperations.IsPow2(granule))
        {
            throw new ArgumentOutOfRangeException(nameof(granule), granule, "The granule (the smallest IOMMU page size) must be a power of two.");
        }
        IovaRange[] usable = Merge(usableRanges);
        if (usable.Length == 0)
        {
            throw new ArgumentException("At least one usable IOVA range is required.", nameof(usableRanges));
        }
        IovaRange[] reserved = reservedRanges is null ? [] : Merge(reservedRanges);
        IovaRange[] effective = TrimToGranule(Subtract(usable, reserved), granule);

        Granule = granule;
        _granuleMask = granule - 1;
        ReservedRanges = Array.AsReadOnly(reserved);
        UsableRanges = Array.AsReadOnly(effective);
        _free = new IovaTree(effective.Length + 16);
        _allocations = new IovaIndex(16);
        foreach (IovaRange range in effective)
        {
            _free.Insert(range.Start, range.Last);
            _freeBytes += range.Size;
        }
    }

    /// <summary>The x86 interrupt-remapping (MSI) window, <c>0xfee00000</c>–<c>0xfeefffff</c>, which DMA must never target.</summary>
    public static IovaRange X86MsiWindow { get; } = new(0xfee0_0000, 0xfeef_ffff);

    /// <summary>The granule: the smallest IOMMU page size, to which every allocation is aligned and rounded.</summary>
    public ulong Granule { get; }

    /// <summary>
    /// The ranges the allocator hands out from: the usable ranges, merged, minus the reserved ranges, trimmed inward
    /// to the granule, in address order.
    /// </summary>
    public IReadOnlyList<IovaRange> UsableRanges { get; }

    /// <summary>The reserved ranges as given, merged and in address order.</summary>
    public IReadOnlyList<IovaRange> ReservedRanges { get; }

    /// <summary>The number of live allocations (allocated or claimed).</summary>
    public int Count => _allocations.Count;

    /// <summary>The bytes in live allocations.</summary>
    public UInt128 AllocatedBytes => _allocatedBytes;

    /// <summary>The bytes of <see cref="UsableRanges"/> not allocated.</summary>
    public UInt128 FreeBytes => _freeBytes;

    /// <summary>The size of the largest free block (0 when nothing is free), regardless of alignment or DMA mask.</summary>
    public UInt128 LargestFreeBlock
    {
        get
        {
            Settle();
            return _free.IsEmpty ? UInt128.Zero : (UInt128)_free.MaxExtent + 1;
        }
    }

    /// <summary>Node visits of both trees since creation: the operation count the complexity tests bound.</summary>
    internal long OperationCount => _free.Visits + _allocations.Visits;

    /// <summary>
    /// Grows the internal node pools so that up to <paramref name="allocations"/> live allocations (and the free
    /// blocks between them) need no further memory.
    /// </summary>
    /// <param name="allocations">The number of live allocations to provide for.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="allocations"/> is negative or too large.</exception>
    public void EnsureCapacity(int allocations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(allocations);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(allocations, Array.MaxLength - UsableRanges.Count - 1);
        _allocations.EnsureCapacity(allocations);
        // Each allocation splits at most one free block in two.
        _free.EnsureCapacity(allocations + UsableRanges.Count);
    }

    /// <summary>
    /// Allocates the lowest free IOVA block of <paramref name="size"/> bytes (rounded up to <see cref="Granule"/>)
    /// that is aligned to <paramref name="alignment"/> and ends at or below <paramref name="dmaMask"/>.
    /// </summary>
    /// <param name="size">The number of bytes, at least 1; rounded up to the granule.</param>
    /// <param name="alignment">A power of two the start must be a multiple of; 0 (or anything up to the granule) means the granule.</param>
    /// <param name="dmaMask">The highest address the device can reach, e.g. <c>0x0FFF_FFFF</c> for a 28-bit DMA mask.</param>
    /// <returns>The start of the allocation.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0.</exception>
    /// <exception cref="ArgumentException"><paramref name="alignment"/> is not 0 or a power of two.</exception>
    /// <exception cref="VfioException">No free block fits; the message gives the largest free blocks.</exception>
    public ulong Allocate(ulong size, ulong alignment = 0, ulong dmaMask = ulong.MaxValue)
    {
        ulong extent = ExtentOf(size);
        ulong alignMask = AlignmentMaskOf(alignment);
        if (!TryAllocateCore(extent, alignMask, dmaMask, default, out ulong iova))
        {
            throw AllocationFailure(size, extent, alignMask, dmaMask);
        }
        return iova;
    }

    /// <summary>Allocates the lowest free IOVA block of <paramref name="size"/> bytes, if there is one.</summary>
    /// <param name="size">The number of bytes, at least 1; rounded up to the granule.</param>
    /// <param name="iova">The start of the allocation, or 0 when none fits.</param>
    /// <returns>True when a block was allocated.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0.</exception>
    public bool TryAllocate(ulong size, out ulong iova) => TryAllocate(size, 0, ulong.MaxValue, out iova);

    /// <summary>As <see cref="Allocate"/>, but returns false instead of throwing when no free block fits.</summary>
    /// <param name="size">The number of bytes, at least 1; rounded up to the granule.</param>
    /// <param name="alignment">A power of two the start must be a multiple of; 0 (or anything up to the granule) means the granule.</param>
    /// <param name="dmaMask">The highest address the device can reach.</param>
    /// <param name="iova">The start of the allocation, or 0 when none fits.</param>
    /// <returns>True when a block was allocated.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0.</exception>
    /// <exception cref="ArgumentException"><paramref name="alignment"/> is not 0 or a power of two.</exception>
    public bool TryAllocate(ulong size, ulong alignment, ulong dmaMask, out ulong iova)
        => TryAllocateCore(ExtentOf(size), AlignmentMaskOf(alignment), dmaMask, default, out iova);

    /// <summary>
    /// Takes the caller-chosen range of <paramref name="size"/> bytes at <paramref name="iova"/>, e.g. guest RAM
    /// mapped at its guest-physical address. Every byte of it must be free and inside <see cref="UsableRanges"/>.
    /// </summary>
    /// <param name="iova">The first IOVA, a multiple of the granule.</param>
    /// <param name="size">The number of bytes, a non-zero multiple of the granule.</param>
    /// <exception cref="ArgumentException"><paramref name="iova"/> or <paramref name="size"/> is not a multiple of the granule.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0 or the range runs past 2^64 - 1.</exception>
    /// <exception cref="VfioException">Part of the range is allocated, reserved or outside the usable ranges; the
    /// message names the conflicting allocation or range.</exception>
    public void Claim(ulong iova, ulong size)
    {
        ulong last = LastOfFixedRange(iova, size);
        if (!TryClaimCore(iova, last, default))
        {
            throw ClaimFailure(iova, last);
        }
    }

    /// <summary>As <see cref="Claim"/>, but returns false instead of throwing when the range is not free.</summary>
    /// <param name="iova">The first IOVA, a multiple of the granule.</param>
    /// <param name="size">The number of bytes, a non-zero multiple of the granule.</param>
    /// <returns>True when the range was claimed.</returns>
    /// <exception cref="ArgumentException"><paramref name="iova"/> or <paramref name="size"/> is not a multiple of the granule.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0 or the range runs past 2^64 - 1.</exception>
    public bool TryClaim(ulong iova, ulong size) => TryClaimCore(iova, LastOfFixedRange(iova, size), default);

    /// <summary>As <see cref="TryAllocate(ulong, ulong, ulong, out ulong)"/> without extra alignment, keeping
    /// <paramref name="data"/> with the allocation (for <see cref="DmaSpace"/>, whose book this is).</summary>
    internal bool TryAllocate(ulong size, ulong dmaMask, in DmaMappingData data, out ulong iova)
        => TryAllocateCore(ExtentOf(size), _granuleMask, dmaMask, data, out iova);

    /// <summary>As <see cref="TryClaim(ulong, ulong)"/>, keeping <paramref name="data"/> with the allocation.</summary>
    internal bool TryClaim(ulong iova, ulong size, in DmaMappingData data) => TryClaimCore(iova, LastOfFixedRange(iova, size), data);

    /// <summary>The mapping whose allocation starts at <paramref name="start"/>, if any.</summary>
    internal bool TryGetMapping(ulong start, out DmaMapping mapping)
    {
        int node = KnownNodeOf(start, out _);
        if (node != IovaIndex.Nil)
        {
            mapping = MappingOf(node);
            return true;
        }
        mapping = default;
        return false;
    }

    /// <summary>The mapping whose allocation contains <paramref name="iova"/>, if any.</summary>
    internal bool TryFindMapping(ulong iova, out DmaMapping mapping)
    {
        int node = _allocations.Floor(iova);
        if (node != IovaIndex.Nil && _allocations.LastOf(node) >= iova)
        {
            mapping = MappingOf(node);
            return true;
        }
        mapping = default;
        return false;
    }

    /// <summary>The mappings of every allocation, in address order (allocates the list).</summary>
    internal List<DmaMapping> Mappings()
    {
        var list = new List<DmaMapping>(Count);
        for (int node = _allocations.Ceiling(0); node != IovaIndex.Nil; node = _allocations.LastOf(node) == ulong.MaxValue ? IovaIndex.Nil : _allocations.Ceiling(_allocations.LastOf(node) + 1))
        {
            list.Add(MappingOf(node));
        }
        return list;
    }

    private DmaMapping MappingOf(int node)
    {
        ref readonly DmaMappingData data = ref _allocations.DataOf(node);
        ulong start = _allocations.StartOf(node);
        return new DmaMapping(start, _allocations.LastOf(node) - start + 1, data.HostAddress, data.Access, data.Kind);
    }

    /// <summary>Frees the allocation that starts at <paramref name="iova"/>, merging it with free neighbours.</summary>
    /// <param name="iova">The start of an allocation, as <see cref="Allocate"/> returned or <see cref="Claim"/> took it.</param>
    /// <returns>The range that was freed.</returns>
    /// <exception cref="ArgumentException">No allocation starts at <paramref name="iova"/>.</exception>
    public IovaRange Free(ulong iova)
    {
        if (!TryFree(iova, out IovaRange allocation))
        {
            string inside = TryFind(iova, out IovaRange containing)
                ? $"; it lies inside the allocation {containing}, which is freed by its start 0x{containing.Start:x}"
                : string.Empty;
            throw new ArgumentException($"No IOVA allocation starts at 0x{iova:x}{inside}.", nameof(iova));
        }
        return allocation;
    }

    /// <summary>Frees the allocation that starts at <paramref name="iova"/>, if there is one.</summary>
    /// <param name="iova">The start of an allocation.</param>
    /// <param name="allocation">The range that was freed, or the default when none starts there.</param>
    /// <returns>True when an allocation was freed.</returns>
    public bool TryFree(ulong iova, out IovaRange allocation)
    {
        int node = KnownNodeOf(iova, out int position);
        if (node == IovaIndex.Nil)
        {
            allocation = default;
            return false;
        }
        ulong last = _allocations.LastOf(node);
        _allocations.RemoveAt(position, node);
        _knownNode = IovaIndex.Nil;
        if (_held == HeldState.Live && _heldStart == iova)
        {
            // The fast path: the latest allocation stays out of the free tree until another operation needs the tree.
            _held = HeldState.Pending;
        }
        else
        {
            Settle();
            Release(iova, last);
        }
        UInt128 size = (UInt128)(last - iova) + 1;
        _allocatedBytes -= size;
        _freeBytes += size;
        _version++;
        allocation = new IovaRange(iova, last);
        return true;
    }

    /// <summary>Finds the allocation that contains <paramref name="iova"/>.</summary>
    /// <param name="iova">Any IOVA.</param>
    /// <param name="allocation">The allocation containing it, or the default when none does.</param>
    /// <returns>True when <paramref name="iova"/> is allocated.</returns>
    public bool TryFind(ulong iova, out IovaRange allocation)
    {
        int node = _allocations.Floor(iova);
        if (node != IovaIndex.Nil && _allocations.LastOf(node) >= iova)
        {
            allocation = new IovaRange(_allocations.StartOf(node), _allocations.LastOf(node));
            return true;
        }
        allocation = default;
        return false;
    }

    /// <summary>The live allocations in address order (O(log n) per step; allocates an enumerator).</summary>
    /// <returns>The allocations.</returns>
    /// <exception cref="InvalidOperationException">The allocator changed during the enumeration.</exception>
    public IEnumerable<IovaRange> EnumerateAllocations() => Enumerate(_allocations);

    /// <summary>The free blocks in address order, each as large as coalescing made it (O(log n) per step).</summary>
    /// <returns>The free blocks.</returns>
    /// <exception cref="InvalidOperationException">The allocator changed during the enumeration.</exception>
    public IEnumerable<IovaRange> EnumerateFreeBlocks()
    {
        Settle();
        return Enumerate(_free);
    }

    /// <summary>True while a freed block is held out of the free tree by the map-then-unmap fast path (tests only).</summary>
    internal bool HoldsPendingBlock => _held == HeldState.Pending;

    /// <summary>Checks both trees' invariants, the held block's and the byte counts (tests only): O(n); changes nothing.</summary>
    internal void Validate()
    {
        if (_knownNode != IovaIndex.Nil && (!_allocations.IsAt(_knownPosition, _knownNode) || _allocations.StartOf(_knownNode) != _knownStart))
        {
            throw new InvalidOperationException($"The allocation at 0x{_knownStart:x} is not where its remembered node says.");
        }
        _free.Validate();
        _allocations.Validate();
        UInt128 free = UInt128.Zero;
        foreach (IovaRange block in Enumerate(_free))
        {
            free += block.Size;
            if (_held == HeldState.Pending && block.Start <= _heldLast && block.Last >= _heldStart)
            {
                throw new InvalidOperationException($"The held free block [0x{_heldStart:x}, 0x{_heldLast:x}] overlaps the free block {block}.");
            }
        }
        if (_held == HeldState.Pending)
        {
            free += (UInt128)(_heldLast - _heldStart) + 1;
            int node = _allocations.Floor(_heldLast);
            if (node != IovaIndex.Nil && _allocations.LastOf(node) >= _heldStart)
            {
                throw new InvalidOperationException($"The held free block [0x{_heldStart:x}, 0x{_heldLast:x}] overlaps an allocation.");
            }
            if (_heldLowest)
            {
                // Still the lowest fit of its size: no free block below it is as long, and none ends right below it
                // (coalescing would start a fit lower).
                int fit = _free.FirstFit(_heldLast - _heldStart);
                int below = _heldStart == 0 ? IovaTree.Nil : _free.Floor(_heldStart - 1);
                if ((fit != IovaTree.Nil && _free.StartOf(fit) < _heldStart) || (below != IovaTree.Nil && _free.LastOf(below) == _heldStart - 1))
                {
                    throw new InvalidOperationException($"The held free block [0x{_heldStart:x}, 0x{_heldLast:x}] is marked the lowest fit of its size but is not.");
                }
            }
        }
        else if (_held == HeldState.Live)
        {
            int node = _allocations.Floor(_heldStart);
            if (node == IovaIndex.Nil || _allocations.StartOf(node) != _heldStart || _allocations.LastOf(node) != _heldLast)
            {
                throw new InvalidOperationException($"The held allocation [0x{_heldStart:x}, 0x{_heldLast:x}] is not live.");
            }
        }
        UInt128 allocated = UInt128.Zero;
        foreach (IovaRange allocation in EnumerateAllocations())
        {
            allocated += allocation.Size;
        }
        if (free != _freeBytes || allocated != _allocatedBytes)
        {
            throw new InvalidOperationException("The byte counts disagree with the trees.");
        }
    }

    private bool TryAllocateCore(ulong extent, ulong alignMask, ulong dmaMask, in DmaMappingData data, out ulong iova)
    {
        if (_held == HeldState.Pending)
        {
            // The fast path: the block freed last is handed back when it is still the lowest fit of this size (it is
            // as long, the lowest fit, and below the mask), without touching the free tree.
            if (_heldLowest && alignMask == _granuleMask && _heldLast - _heldStart == extent && _heldLast <= dmaMask)
            {
                iova = _heldStart;
                Remember(_heldStart, _allocations.Insert(_heldStart, _heldLast, data, out int position), position);
                Account(extent);
                _held = HeldState.Live;
                return true;
            }
            Settle();
        }
        // The lowest block long enough for the size alone: exactly the lowest fit when only the granule is asked.
        int block = _free.FirstFit(extent);
        if (block == IovaTree.Nil)
        {
            iova = 0;
            return false;
        }
        if (!TryFitIn(block, extent, alignMask, dmaMask, out iova))
        {
            // Then the lowest block long enough to hold an aligned fit wherever it starts (its start is
            // granule-aligned, so aligning up skips at most alignment - granule bytes).
            ulong slack = alignMask - _granuleMask;
            int guaranteed = slack == 0 || extent > ulong.MaxValue - slack ? IovaTree.Nil : _free.FirstFit(extent + slack);
            if (guaranteed == IovaTree.Nil || guaranteed == block || !TryFitIn(guaranteed, extent, alignMask, dmaMask, out iova))
            {
                // Blocks before the first fit are too short even unclipped; blocks after one that straddles the mask
                // lie above it.
                iova = 0;
                return false;
            }
            block = guaranteed;
        }
        Take(block, iova, iova + extent, data);
        Hold(iova, iova + extent, lowest: alignMask == _granuleMask);
        return true;
    }

    private bool TryFitIn(int block, ulong extent, ulong alignMask, ulong dmaMask, out ulong iova)
    {
        iova = 0;
        ulong start = _free.StartOf(block);
        if (start > dmaMask)
        {
            return false;
        }
        // A block that straddles the mask is usable up to the mask only.
        ulong limit = Math.Min(_free.LastOf(block), dmaMask);
        ulong aligned = start + alignMask;
        if (aligned < start)
        {
            // Aligning up would pass 2^64 - 1.
            return false;
        }
        aligned &= ~alignMask;
        if (aligned > limit || limit - aligned < extent)
        {
            return false;
        }
        iova = aligned;
        return true;
    }

    private bool TryClaimCore(ulong iova, ulong last, in DmaMappingData data)
    {
        if (_held == HeldState.Pending)
        {
            if (iova == _heldStart && last == _heldLast)
            {
                // The fast path for map-then-unmap at a fixed IOVA: the held block is claimed back as it is.
                Remember(iova, _allocations.Insert(iova, last, data, out int position), position);
                Account(last - iova);
                _held = HeldState.Live;
                return true;
            }
            Settle();
        }
        int block = _free.Floor(iova);
        if (block == IovaTree.Nil || _free.LastOf(block) < last)
        {
            return false;
        }
        Take(block, iova, last, data);
        // A claim says nothing about the lowest fit, but freeing it may still be held for a claim of the same range.
        Hold(iova, last, lowest: false);
        return true;
    }

    private void Remember(ulong start, int node, int position)
    {
        _knownStart = start;
        _knownNode = node;
        _knownPosition = position;
    }

    // The node of the allocation that starts at `start` (Nil if none) and its block's position: the remembered one, or
    // found by a search and then remembered.
    private int KnownNodeOf(ulong start, out int position)
    {
        if (_knownNode != IovaIndex.Nil && _knownStart == start)
        {
            position = _knownPosition;
            return _knownNode;
        }
        int node = _allocations.FindExact(start, out position);
        if (node != IovaIndex.Nil)
        {
            Remember(start, node, position);
        }
        return node;
    }

    // Records [start, last], just allocated or claimed, as the held allocation.
    private void Hold(ulong start, ulong last, bool lowest)
    {
        _held = HeldState.Live;
        _heldStart = start;
        _heldLast = last;
        _heldLowest = lowest;
    }

    // Returns the held free block, if any, to the free tree (with coalescing): what every operation that reads or
    // changes the free tree does first. The byte counts already count it as free.
    private void Settle()
    {
        if (_held == HeldState.Pending)
        {
            Release(_heldStart, _heldLast);
            _held = HeldState.None;
        }
    }

    private void Account(ulong extent)
    {
        UInt128 size = (UInt128)extent + 1;
        _allocatedBytes += size;
        _freeBytes -= size;
        _version++;
    }

    // Moves [start, last], which lies inside the free block the latest free-tree search returned, to the allocations.
    private void Take(int block, ulong start, ulong last, in DmaMappingData data)
    {
        ulong blockStart = _free.StartOf(block);
        ulong blockLast = _free.LastOf(block);
        if (start == blockStart)
        {
            if (last == blockLast)
            {
                _free.RemoveFound(block);
            }
            else
            {
                _free.SetRange(block, last + 1, blockLast);
            }
        }
        else
        {
            _free.SetRange(block, blockStart, start - 1);
            if (last != blockLast)
            {
                _free.Insert(last + 1, blockLast);
            }
        }
        Remember(start, _allocations.Insert(start, last, data, out int position), position);
        Account(last - start);
    }

    // Returns [start, last], no longer allocated, to the free tree, merging with adjacent free blocks (the caller
    // counts the bytes). Free space added to the tree may lie below the held allocation, which is then no longer
    // known to be the lowest fit.
    private void Release(ulong start, ulong last)
    {
        _heldLowest = false;
        _free.Neighbours(start, out int below, out int above);
        // A free block below ends before start, so its last + 1 cannot overflow; one above starts after last, so
        // last + 1 cannot either.
        bool joinBelow = below != IovaTree.Nil && _free.LastOf(below) + 1 == start;
        bool joinAbove = above != IovaTree.Nil && _free.StartOf(above) == last + 1;
        if (joinBelow && joinAbove)
        {
            // Both lie on the search path, which SetRange keeps valid.
            _free.SetRange(below, _free.StartOf(below), _free.LastOf(above));
            _free.RemoveFound(above);
        }
        else if (joinBelow)
        {
            _free.SetRange(below, _free.StartOf(below), last);
        }
        else if (joinAbove)
        {
            _free.SetRange(above, start, _free.LastOf(above));
        }
        else
        {
            _free.Insert(start, last);
        }
    }

    private IEnumerable<IovaRange> Enumerate(IOrderedRanges tree)
    {
        int version = _version;
        int node = tree.Ceiling(0);
        while (node != IovaTree.Nil)
        {
            ulong last = tree.LastOf(node);
            yield return new IovaRange(tree.StartOf(node), last);
            if (version != _version)
            {
                throw new InvalidOperationException("The IOVA allocator changed during the enumeration.");
            }
            if (last == ulong.MaxValue)
            {
                yield break;
            }
            node = tree.Ceiling(last + 1);
        }
    }

    // size rounded up to the granule, minus 1: never overflows, and a size of 2^64 - 1 gives the whole space.
    private ulong ExtentOf(ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        return (size - 1) | _granuleMask;
    }

    private ulong AlignmentMaskOf(ulong alignment)
    {
        if (alignment != 0 && !BitOperations.IsPow2(alignment))
        {
            throw new ArgumentException($"The alignment 0x{alignment:x} is not a power of two.", nameof(alignment));
        }
        return Math.Max(alignment, Granule) - 1;
    }

    private ulong LastOfFixedRange(ulong iova, ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        if ((iova & _granuleMask) != 0)
        {
            throw new ArgumentException($"The IOVA 0x{iova:x} is not aligned to the IOMMU page size 0x{Granule:x}.", nameof(iova));
        }
        if ((size & _granuleMask) != 0)
        {
            throw new ArgumentException($"The size 0x{size:x} is not a multiple of the IOMMU page size 0x{Granule:x}.", nameof(size));
        }
        if (size - 1 > ulong.MaxValue - iova)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"0x{size:x} bytes from IOVA 0x{iova:x} run past the end of the 64-bit IOVA space.");
        }
        return iova + (size - 1);
    }

    private VfioException AllocationFailure(ulong size, ulong extent, ulong alignMask, ulong dmaMask)
    {
        var detail = new StringBuilder();
        UInt128 rounded = (UInt128)extent + 1;
        detail.Append(CultureInfo.InvariantCulture, $"no free block of {FormatBytes(rounded)}");
        if (rounded != size)
        {
            detail.Append(CultureInfo.InvariantCulture, $" (0x{size:x} rounded up to the IOMMU page size 0x{Granule:x})");
        }
        if (alignMask > _granuleMask)
        {
            detail.Append(CultureInfo.InvariantCulture, $" aligned to 0x{alignMask + 1:x}");
        }
        if (dmaMask != ulong.MaxValue)
        {
            detail.Append(CultureInfo.InvariantCulture, $" lies at or below the DMA mask 0x{dmaMask:x}; the largest free block below the mask is ");
            detail.Append(_free.TryGetMaxExtentAtOrBelow(dmaMask, out ulong below) ? FormatBytes((UInt128)below + 1) : "none");
            detail.Append(", the largest anywhere ");
        }
        else
        {
            detail.Append(" is left; the largest free block is ");
        }
        detail.Append(LargestFreeBlock == UInt128.Zero ? "none" : FormatBytes(LargestFreeBlock));
        detail.Append(CultureInfo.InvariantCulture, $"; {Count} allocations live, {FormatBytes(FreeBytes)} free in total");
        return new VfioException(AllocateOperation, objectName: null, detail.ToString(),
            "Free mappings that are no longer needed, raise the DMA mask if the device can address more, or map at a fixed IOVA with Claim.");
    }

    private VfioException ClaimFailure(ulong iova, ulong last)
    {
        var range = new IovaRange(iova, last);
        // The lowest allocation in the way, if any.
        int node = _allocations.Floor(iova);
        if (node == IovaIndex.Nil || _allocations.LastOf(node) < iova)
        {
            node = _allocations.Ceiling(iova);
        }
        if (node != IovaIndex.Nil && _allocations.StartOf(node) <= last)
        {
            var conflict = new IovaRange(_allocations.StartOf(node), _allocations.LastOf(node));
            return new VfioException(ClaimOperation, objectName: null, $"{range} overlaps the allocation {conflict}",
                "Free that allocation first, or claim a range that does not overlap it.");
        }
        foreach (IovaRange reserved in ReservedRanges)
        {
            if (reserved.Overlaps(range))
            {
                return new VfioException(ClaimOperation, objectName: null, $"{range} overlaps the reserved range {reserved}",
                    "Reserved ranges (such as the x86 MSI window 0xfee00000-0xfeefffff) can never be DMA targets; choose an IOVA outside them.");
            }
        }
        var detail = new StringBuilder();
        detail.Append(CultureInfo.InvariantCulture, $"{range} is not inside the usable IOVA ranges (");
        const int Shown = 4;
        for (int i = 0; i < Math.Min(UsableRanges.Count, Shown); i++)
        {
            detail.Append(i == 0 ? string.Empty : ", ").Append(UsableRanges[i].ToString());
        }
        if (UsableRanges.Count > Shown)
        {
            detail.Append(CultureInfo.InvariantCulture, $", and {UsableRanges.Count - Shown} more");
        }
        detail.Append(')');
        return new VfioException(ClaimOperation, objectName: null, detail.ToString(),
            "The IOMMU translates only the ranges it reports (VFIO_IOMMU_GET_INFO, IOMMU_IOAS_IOVA_RANGES); choose an IOVA inside one, or check the (v)IOMMU's address width.");
    }

    private static string FormatBytes(UInt128 bytes)
    {
        string hex = string.Create(CultureInfo.InvariantCulture, $"0x{bytes:x} bytes");
        if (bytes < 1024)
        {
            return hex;
        }
        string[] units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
        double value = (double)bytes / 1024;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return string.Create(CultureInfo.InvariantCulture, $"{hex} ({value:0.##} {units[unit]})");
    }

    private static IovaRange[] Merge(IEnumerable<IovaRange> ranges)
    {
        var sorted = new List<IovaRange>(ranges);
        sorted.Sort(static (a, b) => a.Start.CompareTo(b.Start));
        var merged = new List<IovaRange>(sorted.Count);
        foreach (IovaRange range in sorted)
        {
            if (merged.Count > 0)
            {
                IovaRange previous = merged[^1];
                if (previous.Last == ulong.MaxValue || range.Start <= previous.Last + 1)
                {
                    merged[^1] = new IovaRange(previous.Start, Math.Max(previous.Last, range.Last));
                    continue;
                }
            }
            merged.Add(range);
        }
        return [.. merged];
    }

    private static List<IovaRange> Subtract(IovaRange[] usable, IovaRange[] reserved)
    {
        var result = new List<IovaRange>(usable.Length + reserved.Length);
        foreach (IovaRange range in usable)
        {
            ulong next = range.Start;
            bool exhausted = false;
            foreach (IovaRange hole in reserved)
            {
                if (hole.Last < next || hole.Start > range.Last)
                {
                    continue;
                }
                if (hole.Start > next)
                {
                    result.Add(new IovaRange(next, hole.Start - 1));
                }
                if (hole.Last >= range.Last)
                {
                    exhausted = true;
                    break;
                }
                next = hole.Last + 1;
            }
            if (!exhausted)
            {
                result.Add(new IovaRange(next, range.Last));
            }
        }
        return result;
    }

    private static IovaRange[] TrimToGranule(List<IovaRange> ranges, ulong granule)
    {
        ulong mask = granule - 1;
        var trimmed = new List<IovaRange>(ranges.Count);
        foreach (IovaRange range in ranges)
        {
            ulong start = range.Start + mask;
            if (start < range.Start)
            {
                continue;
            }
            start &= ~mask;
            ulong last = range.Last;
            if ((last & mask) != mask)
            {
                ulong end = last & ~mask;
                if (end == 0)
                {
                    continue;
                }
                last = end - 1;
            }
            if (start <= last)
            {
                trimmed.Add(new IovaRange(start, last));
            }
        }
        return [.. trimmed];
    }
}
