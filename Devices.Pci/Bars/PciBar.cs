// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>What a base address register decodes.</summary>
public enum PciBarKind
{
    /// <summary>The BAR is not implemented (vfio-pci reports a region of size 0).</summary>
    Unimplemented,

    /// <summary>A memory BAR (32- or 64-bit, see <see cref="PciBar.Is64Bit"/>).</summary>
    Memory,

    /// <summary>An I/O-port BAR: accessible through pread/pwrite only, never mapped.</summary>
    Io,

    /// <summary>The upper 32 bits of the 64-bit memory BAR before it; not a BAR of its own.</summary>
    UpperHalf,
}

/// <summary>
/// One base address register of a <see cref="VfioPciDevice"/>, decoded: its kind and flags from configuration space
/// (bit 0 I/O; bits 2:1 the memory type, 64-bit when 2; bit 3 prefetchable) and its size from the kernel's region
/// info (the BAR's resource length, so no sizing writes to the device are needed).
/// </summary>
public sealed class PciBar
{
    internal PciBar(int index, PciBarKind kind, bool is64Bit, bool isPrefetchable, VfioRegionInfo region)
    {
        Index = index;
        Kind = kind;
        Is64Bit = is64Bit;
        IsPrefetchable = isPrefetchable;
        Region = region;
    }

    /// <summary>The BAR index, 0–5 (also the VFIO region index).</summary>
    public int Index { get; }

    /// <summary>What the BAR decodes.</summary>
    public PciBarKind Kind { get; }

    /// <summary>A 64-bit memory BAR (it takes this index and the next).</summary>
    public bool Is64Bit { get; }

    /// <summary>A prefetchable memory BAR.</summary>
    public bool IsPrefetchable { get; }

    /// <summary>The size in bytes; 0 when unimplemented or an upper half.</summary>
    public ulong Size => Kind is PciBarKind.Memory or PciBarKind.Io ? Region.Size : 0;

    /// <summary>What the kernel reported for the BAR's region.</summary>
    public VfioRegionInfo Region { get; }

    /// <summary>Whether the kernel lets the BAR be mapped (a memory BAR with <c>VFIO_REGION_INFO_FLAG_MMAP</c>).</summary>
    public bool CanMap => Kind == PciBarKind.Memory && Region.CanMmap;

    /// <inheritdoc/>
    public override string ToString()
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        return Kind switch
        {
            PciBarKind.Memory => string.Create(c, $"BAR{Index}: memory, {(Is64Bit ? "64" : "32")}-bit{(IsPrefetchable ? ", prefetchable" : "")}, 0x{Size:X} bytes{(CanMap ? "" : ", not mappable")}"),
            PciBarKind.Io => string.Create(c, $"BAR{Index}: I/O ports, 0x{Size:X} bytes"),
            PciBarKind.UpperHalf => string.Create(c, $"BAR{Index}: upper half of BAR{Index - 1}"),
            _ => string.Create(c, $"BAR{Index}: unimplemented"),
        };
    }

    /// <summary>Decodes a BAR's kind from its configuration register and its region size.</summary>
    /// <param name="register">The BAR register's value.</param>
    /// <param name="regionSize">The region size the kernel reports (0: not implemented).</param>
    /// <param name="previousIs64Bit">The BAR before this one is a 64-bit memory BAR (this one is its upper half).</param>
    /// <returns>The kind, the 64-bit flag and the prefetchable flag.</returns>
    internal static (PciBarKind Kind, bool Is64Bit, bool IsPrefetchable) Decode(uint register, ulong regionSize, bool previousIs64Bit)
    {
        if (previousIs64Bit)
        {
            return (PciBarKind.UpperHalf, false, false);
        }
        if ((register & 1) != 0)
        {
            return (regionSize == 0 ? PciBarKind.Unimplemented : PciBarKind.Io, false, false);
        }
        bool is64 = ((register >> 1) & 3) == 2;
        bool prefetchable = (register & 8) != 0;
        // A 64-bit BAR's upper half is reserved even when the BAR is not implemented, so the flag stays.
        return (regionSize == 0 ? PciBarKind.Unimplemented : PciBarKind.Memory, is64, prefetchable);
    }
}
