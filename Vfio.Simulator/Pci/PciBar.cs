// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A BAR of an <see cref="EmulatedPciDevice"/>: a memory BAR with its size and type, whether VFIO lets user space mmap
/// it, and (for models of variant drivers) the sparse areas that may be mapped; or an I/O-port BAR
/// (<see cref="IoPorts"/>), which vfio-pci serves through read/write only.
/// </summary>
public sealed class PciBar
{
    /// <summary>Describes a memory BAR.</summary>
    /// <param name="size">Its size in bytes: a power of two, at least 16.</param>
    /// <param name="is64Bit">A 64-bit BAR, which also occupies the next BAR slot (that slot must be null).</param>
    /// <param name="prefetchable">The prefetchable bit of the BAR.</param>
    /// <param name="mappable">VFIO reports <c>VFIO_REGION_INFO_FLAG_MMAP</c> (vfio-pci does for memory BARs).</param>
    public PciBar(ulong size, bool is64Bit = false, bool prefetchable = false, bool mappable = true)
    {
        if (size < 16 || (size & (size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "A BAR size is a power of two of at least 16 bytes.");
        }
        if (!is64Bit && size > 0x8000_0000)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "A 32-bit BAR is at most 2 GiB.");
        }
        Size = size;
        Is64Bit = is64Bit;
        Prefetchable = prefetchable;
        Mappable = mappable;
    }

    /// <summary>Describes an I/O-port BAR: readable and writable through the region, never mapped (vfio-pci reports
    /// no <c>VFIO_REGION_INFO_FLAG_MMAP</c> for it).</summary>
    /// <param name="size">Its size in bytes: a power of two from 4 to 256.</param>
    /// <returns>The BAR.</returns>
    public static PciBar IoPorts(ulong size)
    {
        if (size is < 4 or > 256 || (size & (size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "An I/O BAR size is a power of two from 4 to 256 bytes.");
        }
        return new PciBar(size, isIo: true);
    }

    private PciBar(ulong size, bool isIo)
    {
        Size = size;
        IsIo = isIo;
    }

    /// <summary>An I/O-port BAR.</summary>
    public bool IsIo { get; }

    /// <summary>The BAR's size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>A 64-bit memory BAR.</summary>
    public bool Is64Bit { get; }

    /// <summary>The prefetchable bit.</summary>
    public bool Prefetchable { get; }

    /// <summary>User space may mmap the BAR.</summary>
    public bool Mappable { get; }

    /// <summary>
    /// When set, GET_REGION_INFO reports a <c>VFIO_REGION_INFO_CAP_SPARSE_MMAP</c> capability with these areas (offset,
    /// size within the BAR) and mmap is refused outside them — what a variant driver does to keep a range (e.g. the
    /// MSI-X table page) from user mappings. Plain vfio-pci in 6.12 never reports it.
    /// </summary>
    public IReadOnlyList<(ulong Offset, ulong Size)>? SparseMmapAreas { get; init; }

    /// <summary>The BAR's low type bits as config space shows them (memory, 32/64-bit, prefetchable).</summary>
    internal uint TypeBits => IsIo ? 0x1u : (Is64Bit ? 0x4u : 0u) | (Prefetchable ? 0x8u : 0u);

    /// <summary>The bits of the BAR register that hold the address (the rest are type bits).</summary>
    internal uint AddressMask => IsIo ? 0xffff_fffc : 0xffff_fff0;
}
