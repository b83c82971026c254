// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>Spans over DMA memory (<see cref="DmaBuffer"/>, <see cref="PhysicalDmaBuffer"/>), bounds-checked.</summary>
internal static class DmaMemorySpan
{
    /// <summary>The <paramref name="length"/> bytes at <paramref name="offset"/> of <paramref name="memory"/>.</summary>
    internal static unsafe Span<byte> Get(MemoryMapping memory, ulong offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ulong size = memory.Length;
        if (offset > size || size - offset < (ulong)length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{length} bytes at 0x{offset:X} are outside the 0x{size:X}-byte buffer.");
        }
        return new Span<byte>((byte*)memory.DangerousGetHandle() + offset, length);
    }
}
