// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Samples.Edu;

/// <summary>
/// Page-aligned, zeroed native memory for a device's DMA: what a driver maps into a <c>DmaSpace</c>
/// (<c>space.Map(memory.Address, memory.Size, ...)</c>). Free it only after it is unmapped.
/// </summary>
public sealed unsafe class DmaMemory : IDisposable
{
    private void* _memory;

    /// <summary>Allocates <paramref name="size"/> bytes aligned to the host page size.</summary>
    /// <param name="size">The size, a multiple of the host page size.</param>
    public DmaMemory(int size)
    {
        int page = Environment.SystemPageSize;
        if (size <= 0 || size % page != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"DMA memory comes in whole pages of {page} bytes.");
        }
        _memory = NativeMemory.AlignedAlloc((nuint)size, (nuint)page);
        Size = (ulong)size;
        Span.Clear();
    }

    /// <summary>The host address, for <c>DmaSpace.Map</c>.</summary>
    public nint Address => (nint)Pointer;

    /// <summary>The size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>The memory, as the CPU sees it.</summary>
    public Span<byte> Span => new(Pointer, (int)Size);

    private void* Pointer => _memory != null ? _memory : throw new ObjectDisposedException(nameof(DmaMemory));

    /// <inheritdoc/>
    public void Dispose()
    {
        NativeMemory.AlignedFree(_memory);
        _memory = null;
    }
}
