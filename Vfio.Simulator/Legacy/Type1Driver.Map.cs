// SPDX-License-Identifier: MIT
using System.Numerics;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class Type1Driver
{
    private const int MapSize = 32;
    private const int UnmapSize = 24;
    private const int BitmapSize = 24;

    /// <summary>x86-64 <c>TASK_SIZE</c>: user addresses lie below it (<c>access_ok</c>, page pinning).</summary>
    private const ulong TaskSize = 0x7fff_ffff_f000;

    private const uint MapFlags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE | VfioUapi.VFIO_DMA_MAP_FLAG_VADDR;

    private const uint UnmapFlags = VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL | VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR;

    /// <summary>VFIO_IOMMU_MAP_DMA (vfio_dma_do_map), checks in the kernel's order.</summary>
    private int MapDma(nint argument)
    {
        int rc = UserMemory.Read(argument, MapSize, out vfio_iommu_type1_dma_map map);
        if (rc < 0)
        {
            return rc;
        }
        if (map.argsz < MapSize || (map.flags & ~MapFlags) != 0)
        {
            return -(int)Errno.EINVAL;
        }
        bool setVaddr = (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_VADDR) != 0;
        bool read = (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_READ) != 0;
        bool write = (map.flags & VfioUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0;
        bool prot = read || write;
        if (prot == setVaddr)
        {
            return -(int)Errno.EINVAL;
        }
        ulong iova = map.iova;
        ulong size = map.size;
        ulong vaddr = map.vaddr;
        lock (_sync)
        {
            ulong mask = MinPageSize - 1;
            if (size == 0 || ((size | iova | vaddr) & mask) != 0)
            {
                return -(int)Errno.EINVAL;
            }
            if (iova + size - 1 < iova || vaddr + size - 1 < vaddr)
            {
                return -(int)Errno.EINVAL;
            }
            Type1Mapping? existing = FindDma(iova, size);
            if (setVaddr)
            {
                if (existing is null)
                {
                    return -(int)Errno.ENOENT;
                }
                if (!existing.VaddrInvalid || existing.Iova != iova || existing.Size != size)
                {
                    return -(int)Errno.EINVAL;
                }
                // vfio_change_dma_owner(): same process, same mm — nothing to re-account.
                existing.Vaddr = vaddr;
                existing.VaddrInvalid = false;
                _vaddrInvalidCount--;
                return 0;
            }
            if (existing is not null)
            {
                return -(int)Errno.EEXIST;
            }
            if (_dmaAvail <= 0)
            {
                return -(int)Errno.ENOSPC;
            }
            if (!IovaRangeValid(iova, iova + size - 1))
            {
                return -(int)Errno.EINVAL;
            }
            // Pinning (every attached group is IOMMU-backed, so there is always a domain): the first page that cannot be
            // pinned is EFAULT — null or beyond the user address space — then the RLIMIT_MEMLOCK charge.
            if (vaddr == 0 || vaddr + size > TaskSize || vaddr + size < vaddr)
            {
                return -(int)Errno.EFAULT;
            }
            ulong pages = size / PageSize;
            if (!_kernel.TryChargeLockedVm(pages))
            {
                return -(int)Errno.ENOMEM;
            }
            Type1Mapping mapping = (_free.TryPop(out Type1Mapping? recycled) ? recycled : new Type1Mapping()).Set(iova, size, vaddr, read, write);
            mapping.LockedPages = pages;
            if (_dirtyTracking)
            {
                mapping.Dirty = NewBitmap(size);
            }
            Insert(mapping);
            return 0;
        }
    }

    /// <summary><c>vfio_iommu_iova_dma_valid</c>: with an empty list everything is valid, else [start, end] must lie in one range.</summary>
    private bool IovaRangeValid(ulong start, ulong end)
    {
        if (_iovaRanges.Length == 0)
        {
            return true;
        }
        foreach (vfio_iova_range range in _iovaRanges)
        {
            if (start >= range.start && end <= range.end)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>VFIO_IOMMU_UNMAP_DMA (vfio_dma_do_unmap): validation, then <c>vfio_dma_do_unmap</c>; on success the first 24 bytes are
    /// written back with <c>size</c> = bytes unmapped (or invalidated).</summary>
    private int UnmapDma(nint argument)
    {
        int rc = UserMemory.Read(argument, UnmapSize, out vfio_iommu_type1_dma_unmap unmap);
        if (rc < 0)
        {
            return rc;
        }
        if (unmap.argsz < UnmapSize || (unmap.flags & ~UnmapFlags) != 0)
        {
            return -(int)Errno.EINVAL;
        }
        bool getBitmap = (unmap.flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) != 0;
        if (getBitmap && (unmap.flags & (VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL | VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR)) != 0)
        {
            return -(int)Errno.EINVAL;
        }
        vfio_bitmap bitmap = default;
        if (getBitmap)
        {
            if (unmap.argsz < UnmapSize + BitmapSize)
            {
                return -(int)Errno.EINVAL;
            }
            rc = UserMemory.Read(argument + UnmapSize, BitmapSize, out bitmap);
            if (rc < 0)
            {
                return rc;
            }
            if (!AccessOk(bitmap.data, bitmap.size))
            {
                return -(int)Errno.EINVAL;
            }
            rc = VerifyBitmapSize(unmap.size >> BitOperations.TrailingZeroCount(bitmap.pgsize), bitmap.size);
            if (rc < 0)
            {
                return rc;
            }
        }
        lock (_sync)
        {
            rc = DoUnmap(ref unmap, in bitmap);
        }
        if (rc < 0)
        {
            return rc;
        }
        return UserMemory.Write(argument, UnmapSize, unmap);
    }

    private int DoUnmap(ref vfio_iommu_type1_dma_unmap unmap, in vfio_bitmap bitmap)
    {
        ulong iova = unmap.iova;
        ulong size = unmap.size;
        bool unmapAll = (unmap.flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0;
        bool invalidateVaddr = (unmap.flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR) != 0;
        bool getBitmap = (unmap.flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) != 0;
        // (VADDR with an emulated-IOMMU group attached is EBUSY; the model has no such groups.)
        ulong pgsize = MinPageSize;
        ulong unmapped = 0;
        int rc = -(int)Errno.EINVAL;
        try
        {
            if ((iova & (pgsize - 1)) != 0)
            {
                return rc;
            }
            if (unmapAll)
            {
                if (iova != 0 || size != 0)
                {
                    return rc;
                }
                size = ulong.MaxValue;
            }
            else if (size == 0 || (size & (pgsize - 1)) != 0 || iova + size - 1 < iova)
            {
                return rc;
            }
            if (getBitmap && (!_dirtyTracking || bitmap.pgsize != pgsize))
            {
                return rc;
            }
            if (_v2 && !unmapAll)
            {
                // Unmap requests must not bisect a mapping at either end.
                Type1Mapping? head = FindDma(iova, 1);
                if (head is not null && head.Iova != iova)
                {
                    return rc;
                }
                Type1Mapping? tail = FindDma(iova + size - 1, 0);
                if (tail is not null && tail.End != iova + size)
                {
                    return rc;
                }
            }
            rc = 0;
            int first = FirstEndingAfter(iova);
            int n = first;
            while (n < _mappings.Count)
            {
                Type1Mapping dma = _mappings[n];
                if (dma.Iova >= iova + size)
                {
                    break;
                }
                if (!_v2 && iova > dma.Iova)
                {
                    // v1: a request that starts inside a mapping unmaps nothing.
                    break;
                }
                if (invalidateVaddr)
                {
                    if (dma.VaddrInvalid)
                    {
                        for (int i = first; i < n; i++)
                        {
                            _mappings[i].VaddrInvalid = false;
                            _vaddrInvalidCount--;
                        }
                        rc = -(int)Errno.EINVAL;
                        unmapped = 0;
                        break;
                    }
                    dma.VaddrInvalid = true;
                    _vaddrInvalidCount++;
                    unmapped += dma.Size;
                    n++;
                    continue;
                }
                if (getBitmap)
                {
                    rc = UpdateUserBitmap(bitmap.data, dma, iova, pgsize);
                    if (rc < 0)
                    {
                        break;
                    }
                }
                unmapped += dma.Size;
                RemoveAt(n);
            }
            return rc;
        }
        finally
        {
            unmap.size = unmapped;
        }
    }

    /// <summary><c>access_ok</c> on x86-64: the range does not wrap and ends at or below TASK_SIZE.</summary>
    private static bool AccessOk(ulong address, ulong size) => address + size >= address && address + size <= TaskSize;

    /// <summary><c>verify_bitmap_size</c>: at least one page, a non-zero bitmap no larger than the maximum, large enough
    /// for <paramref name="pages"/> bits rounded up to 64.</summary>
    private static int VerifyBitmapSize(ulong pages, ulong bitmapSize)
    {
        if (pages == 0 || bitmapSize == 0 || bitmapSize > MaxDirtyBitmapSize)
        {
            return -(int)Errno.EINVAL;
        }
        ulong needed = ((pages + 63) & ~63UL) / 8;
        return bitmapSize < needed ? -(int)Errno.EINVAL : 0;
    }
}
