// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

internal sealed partial class IommuFdFile
{
    /// <summary>Areas removed from an IOAS of this context, reused by the next MAP, COPY or split.</summary>
    private readonly Stack<IoasArea> _freeAreas = new();

    /// <summary>Page sets no area uses any more, reused by the next MAP.</summary>
    private readonly Stack<IoptPages> _freePages = new();

    /// <summary>A free area (pooled or new) for an IOAS of this context: with the pools, IOAS MAP/UNMAP allocates
    /// nothing once warm (the kernel port's contract), as the kernel's slab caches reuse their objects.</summary>
    internal IoasArea RentArea() => _freeAreas.TryPop(out IoasArea? area) ? area : new IoasArea();

    /// <summary>A page set (pooled or new) for a new MAP, in the given accounting mode.</summary>
    internal IoptPages RentPages(bool perUser) => (_freePages.TryPop(out IoptPages? pages) ? pages : new IoptPages(Kernel)).Reset(perUser);

    /// <summary>An area left its IOAS, already unpinned: it drops its page reference and both go back to the pools
    /// (the pages only when it was their last area).</summary>
    internal void ReturnArea(IoasArea area)
    {
        IoptPages? unused = area.Clear();
        if (unused is not null)
        {
            _freePages.Push(unused);
        }
        _freeAreas.Push(area);
    }
}
