// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Backends.SpaprTce;

/// <summary>One DMA window of an sPAPR TCE container: a TCE table the devices' bus addresses in
/// [<see cref="Start"/>, <see cref="Start"/> + <see cref="Size"/>) translate through.</summary>
/// <param name="Start">The window's bus address (chosen by the platform).</param>
/// <param name="Size">Its size in bytes (a power of two).</param>
/// <param name="PageSize">The IOMMU page (TCE) size in bytes.</param>
/// <param name="Levels">The TCE table's levels.</param>
/// <param name="Mappings">The space's mappings in it now.</param>
/// <param name="Fixed">True for v1's platform window (never created or removed by the container).</param>
public readonly record struct SpaprDmaWindow(ulong Start, ulong Size, ulong PageSize, int Levels, int Mappings, bool Fixed)
{
    /// <summary>The window's bus address range.</summary>
    public IovaRange Range => IovaRange.FromStartSize(Start, Size);
}
