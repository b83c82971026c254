// SPDX-License-Identifier: MIT
namespace Vfio.Core;

public sealed partial class DmaSpace
{
    /// <summary>Unmaps a <see cref="DmaBuffer"/>'s mapping if the space still holds exactly it: not after the space was
    /// disposed (which unmapped everything) nor after the caller unmapped it (its IOVA may belong to another mapping since).</summary>
    /// <param name="mapping">The buffer's mapping.</param>
    /// <returns>True when it was unmapped here.</returns>
    /// <exception cref="VfioDmaException">A container's kernel refused the unmap; the mapping stays.</exception>
    internal bool UnmapBuffer(in DmaMapping mapping)
    {
        lock (_lock)
        {
            if (_disposed || !_iovas.TryGetMapping(mapping.Iova, out DmaMapping current) || current != mapping)
            {
                return false;
            }
            Unmap(mapping.Iova);
            return true;
        }
    }
}
