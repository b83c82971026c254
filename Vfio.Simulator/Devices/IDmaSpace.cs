// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// What a device sees of memory: the IOMMU translation of the container (Type1), IOAS/HWPT (iommufd) or the
/// identity of no-IOMMU mode, from an IOVA to this process's memory.
/// </summary>
internal interface IDmaSpace
{
    /// <summary>Translates <paramref name="length"/> bytes at <paramref name="iova"/> for a read or a write by the
    /// device. Succeeds only when the whole range is mapped, contiguous in process memory and, for a write, writable.</summary>
    /// <param name="iova">The I/O virtual address the device uses.</param>
    /// <param name="length">The access length in bytes.</param>
    /// <param name="write">True for a device write (DMA to memory).</param>
    /// <param name="address">The process address of the first byte.</param>
    /// <returns>True when translated; false is an IOMMU fault.</returns>
    bool TryTranslate(ulong iova, ulong length, bool write, out nint address);
}
