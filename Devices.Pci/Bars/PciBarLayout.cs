// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>Pure layout rules of BAR mappings.</summary>
internal static class PciBarLayout
{
    /// <summary>
    /// The page-aligned areas of BAR <paramref name="bar"/> (of <paramref name="size"/> bytes) that stay mappable when
    /// the pages holding the MSI-X table and pending-bit array of <paramref name="msix"/> are left out, by offset.
    /// </summary>
    /// <remarks>Older kernels refuse to map the table (QEMU splits the BAR the same way); the left-out pages are
    /// reached by pread/pwrite.</remarks>
    internal static VfioSparseMmapArea[] AroundMsix(int bar, ulong size, PciMsixLayout msix, ulong pageSize)
    {
        Span<(ulong Start, ulong End)> holes = stackalloc (ulong, ulong)[2];
        int count = 0;
        if (msix.TableBar == bar)
        {
            holes[count++] = Hole(msix.TableOffset, msix.TableSize, pageSize, size);
        }
        if (msix.PbaBar == bar)
        {
            holes[count++] = Hole(msix.PbaOffset, msix.PbaSize, pageSize, size);
        }
        holes = holes[..count];
        holes.Sort(static (a, b) => a.Start.CompareTo(b.Start));
        var areas = new List<VfioSparseMmapArea>(3);
        ulong cursor = 0;
        foreach ((ulong start, ulong end) in holes)
        {
            if (start > cursor)
            {
                areas.Add(new VfioSparseMmapArea(cursor, start - cursor));
            }
            cursor = Math.Max(cursor, end);
        }
        if (cursor < size)
        {
            areas.Add(new VfioSparseMmapArea(cursor, size - cursor));
        }
        return [.. areas];
    }

    private static (ulong Start, ulong End) Hole(ulong offset, ulong length, ulong pageSize, ulong size)
    {
        ulong start = offset & ~(pageSize - 1);
        ulong end = (offset + length + pageSize - 1) & ~(pageSize - 1);
        return (Math.Min(start, size), Math.Min(end, size));
    }
}
