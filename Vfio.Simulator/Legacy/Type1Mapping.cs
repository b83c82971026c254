// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// One DMA mapping of a Type1 container (the kernel's <c>struct vfio_dma</c>): [iova, iova+size) → vaddr with
/// read/write permission, and while dirty tracking is on one bit per minimum IOMMU page.
/// </summary>
internal sealed class Type1Mapping(ulong iova, ulong size, ulong vaddr, bool readable, bool writable)
{
    internal ulong Iova { get; } = iova;

    internal ulong Size { get; } = size;

    /// <summary>One past the last IOVA. Mappings lie inside the IOVA ranges (below 2^39), so this never wraps.</summary>
    internal ulong End => Iova + Size;

    /// <summary>The process address of the first byte; replaced by MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR.</summary>
    internal ulong Vaddr { get; set; } = vaddr;

    internal bool Readable { get; } = readable;

    internal bool Writable { get; } = writable;

    /// <summary>UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR invalidated the process address; DMA still goes to the
    /// pinned pages (the old address).</summary>
    internal bool VaddrInvalid { get; set; }

    /// <summary>Pages charged to locked memory (RLIMIT_MEMLOCK) for this mapping.</summary>
    internal ulong LockedPages { get; set; }

    /// <summary>Dirty bits (bit i = page iova + i·pgsize) while dirty tracking is on, else null.</summary>
    internal ulong[]? Dirty { get; set; }
}
