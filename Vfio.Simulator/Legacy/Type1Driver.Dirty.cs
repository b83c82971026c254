// SPDX-License-Identifier: MIT
using System.Numerics;
using System.Runtime.InteropServices;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class Type1Driver
{
    private const int DirtyHeaderSize = 8;
    private const int DirtyGetSize = 40;

    private const uint DirtyFlags = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
        | VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

    /// <summary>VFIO_IOMMU_DIRTY_PAGES (vfio_iommu_type1_dirty_pages): START, STOP, GET_BITMAP; v1 containers get EACCES before anything is read.</summary>
    private int DirtyPages(nint argument)
    {
        if (!_v2)
        {
            return -(int)Errno.EACCES;
        }
        int rc = UserMemory.Read(argument, DirtyHeaderSize, out vfio_iommu_type1_dirty_bitmap dirty);
        if (rc < 0)
        {
            return rc;
        }
        if (dirty.argsz < DirtyHeaderSize || (dirty.flags & ~DirtyFlags) != 0 || BitOperations.PopCount(dirty.flags) != 1)
        {
            return -(int)Errno.EINVAL;
        }
        if (dirty.flags == VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
        {
            lock (_sync)
            {
                if (!_dirtyTracking)
                {
                    // vfio_dma_bitmap_alloc_all + populate: only externally pinned (mdev) pages start dirty; none here.
                    foreach (Type1Mapping mapping in _mappings)
                    {
                        mapping.Dirty = NewBitmap(mapping.Size);
                    }
                    _dirtyTracking = true;
                }
            }
            return 0;
        }
        if (dirty.flags == VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)
        {
            lock (_sync)
            {
                if (_dirtyTracking)
                {
                    _dirtyTracking = false;
                    foreach (Type1Mapping mapping in _mappings)
                    {
                        mapping.Dirty = null;
                    }
                }
            }
            return 0;
        }
        return GetDirtyBitmap(argument, dirty.argsz);
    }

    private int GetDirtyBitmap(nint argument, uint argsz)
    {
        uint dataSize = argsz - DirtyHeaderSize;
        if (dataSize == 0 || dataSize < DirtyGetSize)
        {
            return -(int)Errno.EINVAL;
        }
        int rc = UserMemory.Read(argument + DirtyHeaderSize, DirtyGetSize, out vfio_iommu_type1_dirty_bitmap_get range);
        if (rc < 0)
        {
            return rc;
        }
        if (range.iova + range.size < range.iova)
        {
            return -(int)Errno.EINVAL;
        }
        if (!AccessOk(range.bitmap.data, range.bitmap.size))
        {
            return -(int)Errno.EINVAL;
        }
        rc = VerifyBitmapSize(range.size >> BitOperations.TrailingZeroCount(range.bitmap.pgsize), range.bitmap.size);
        if (rc < 0)
        {
            return rc;
        }
        lock (_sync)
        {
            ulong pgsize = MinPageSize;
            if (range.bitmap.pgsize != pgsize || (range.iova & (pgsize - 1)) != 0 || range.size == 0 || (range.size & (pgsize - 1)) != 0)
            {
                return -(int)Errno.EINVAL;
            }
            if (!_dirtyTracking)
            {
                return -(int)Errno.EINVAL;
            }
            return IovaDirtyBitmap(range.bitmap.data, range.iova, range.size, pgsize);
        }
    }

    /// <summary><c>vfio_iova_dirty_bitmap</c>: no bisected mapping at either end; report every mapping starting in the
    /// range, then re-arm its bits.</summary>
    private int IovaDirtyBitmap(ulong data, ulong iova, ulong size, ulong pgsize)
    {
        Type1Mapping? head = FindDma(iova, 1);
        if (head is not null && head.Iova != iova)
        {
            return -(int)Errno.EINVAL;
        }
        Type1Mapping? tail = FindDma(iova + size - 1, 0);
        if (tail is not null && tail.End != iova + size)
        {
            return -(int)Errno.EINVAL;
        }
        foreach (Type1Mapping dma in _mappings)
        {
            if (dma.Iova < iova)
            {
                continue;
            }
            if (dma.Iova > iova + size - 1)
            {
                break;
            }
            int rc = UpdateUserBitmap(data, dma, iova, pgsize);
            if (rc < 0)
            {
                return rc;
            }
            dma.Dirty?.AsSpan().Clear();
        }
        return 0;
    }

    /// <summary>
    /// <c>update_user_bitmap</c>: writes the mapping's bits at bit (iova − base)/pgsize of the user bitmap. As in the
    /// kernel, bits below that position in the first 64-bit word are preserved, and the words written are rewritten
    /// whole (bits past the mapping in its last word become 0). With an IOMMU-backed group that has no pinned-page dirty
    /// scope, every page reads as dirty.
    /// </summary>
    private int UpdateUserBitmap(ulong data, Type1Mapping dma, ulong baseIova, ulong pgsize)
    {
        int pgshift = BitOperations.TrailingZeroCount(pgsize);
        ulong nbits = dma.Size >> pgshift;
        ulong bitOffset = (dma.Iova - baseIova) >> pgshift;
        ulong copyOffset = bitOffset / 64;
        int shift = (int)(bitOffset % 64);
        ulong words = (nbits + (ulong)shift + 63) / 64;
        var buffer = new ulong[words];
        bool all = _groups.Count > 0 && !PinnedPageDirtyScope;
        for (ulong bit = 0; bit < nbits; bit++)
        {
            bool set = all || (dma.Dirty is { } dirty && (dirty[bit / 64] & (1UL << (int)(bit % 64))) != 0);
            if (set)
            {
                ulong target = bit + (ulong)shift;
                buffer[target / 64] |= 1UL << (int)(target % 64);
            }
        }
        nint address = (nint)(data + (copyOffset * 8));
        if (shift != 0)
        {
            Span<byte> leftover = stackalloc byte[8];
            int rc = UserMemory.CopyFrom(address, leftover);
            if (rc < 0)
            {
                return rc;
            }
            buffer[0] |= MemoryMarshal.Read<ulong>(leftover) & ((1UL << shift) - 1);
        }
        return UserMemory.CopyTo(address, MemoryMarshal.AsBytes(buffer.AsSpan()));
    }

    private static ulong[] NewBitmap(ulong size) => new ulong[((size / PageSize) + 63) / 64];

    /// <summary>Marks the pages of [start, end) in <paramref name="mapping"/> dirty (a device wrote them).</summary>
    private static void MarkDirty(Type1Mapping mapping, ulong start, ulong end)
    {
        if (mapping.Dirty is not { } dirty)
        {
            return;
        }
        ulong firstPage = (start - mapping.Iova) / PageSize;
        ulong lastPage = (end - 1 - mapping.Iova) / PageSize;
        for (ulong page = firstPage; page <= lastPage; page++)
        {
            dirty[page / 64] |= 1UL << (int)(page % 64);
        }
    }
}
