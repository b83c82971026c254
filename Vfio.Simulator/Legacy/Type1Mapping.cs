// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// One DMA mapping of a Type1 container (the kernel's <c>struct vfio_dma</c>): [iova, iova+size) → vaddr with
/// read/write permission, and while dirty tracking is on one bit per minimum IOMMU page.
/// </summary>
/// <remarks>
/// Records are pooled by their driver (a free list refilled by unmap), so the MAP/UNMAP path allocates nothing once
/// warm: <see cref="Set"/> gives a free record its new mapping; nothing may keep a reference after the unmap.
/// </remarks>
internal sealed class Type1Mapping
{
    internal ulong Iova { get; private set; }

    internal ulong Size { get; private set; }

    /// <summary>One past the last IOVA. Mappings lie inside the IOVA ranges (below 2^39), so this never wraps.</summary>
    internal ulong End => Iova + Size;

    /// <summary>The process address of the first byte; replaced by MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR.</summary>
    internal ulong Vaddr { get; set; }

    internal bool Readable { get; private set; }

    internal bool Writable { get; private set; }

    /// <summary>UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR invalidated the process address; DMA still goes to the
    /// pinned pages (the old address).</summary>
    internal bool VaddrInvalid { get; set; }

    /// <summary>Pages charged to locked memory (RLIMIT_MEMLOCK) for this mapping.</summary>
    internal ulong LockedPages { get; set; }

    /// <summary>Dirty bits (bit i = page iova + i·pgsize) while dirty tracking is on, else null.</summary>
    internal ulong[]? Dirty { get; set; }

    /// <summary>Makes this (new or recycled) record the mapping [iova, iova+size) → vaddr, valid, nothing charged,
    /// no dirty bitmap.</summary>
    internal Type1Mapping Set(ulong iova, ulong size, ulong vaddr, bool readable, bool writable)
    {
        Iova = iova;
        Size = size;
        Vaddr = vaddr;
        Readable = readable;
        Writable = writable;
        VaddrInvalid = false;
        LockedPages = 0;
        Dirty = null;
        return this;
    }
}
