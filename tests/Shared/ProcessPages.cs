// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Tests.Shared;

/// <summary>
/// Zeroed, page-aligned process memory for tests that map caller memory themselves — <see cref="DmaSpace.MapAt"/>,
/// misaligned or partial maps, raw uAPI map ioctls — where <see cref="DmaBuffer"/> (which maps itself into a space) cannot
/// serve. The memory is the kernel port's anonymous mmap (<see cref="LinuxKernel.MapAnonymous"/>), unmapped on dispose.
/// </summary>
internal sealed class ProcessPages : IDisposable
{
    internal const int PageSize = 4096;

    private readonly MemoryMapping _memory;

    /// <summary>Maps <paramref name="size"/> bytes, a multiple of <see cref="PageSize"/>.</summary>
    internal ProcessPages(ulong size)
    {
        if (size == 0 || size % PageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "Whole pages only.");
        }
        int rc = LinuxKernel.Instance.MapAnonymous(size, out MemoryMapping? memory);
        _memory = rc == 0 && memory is not null ? memory : throw new InvalidOperationException($"mmap of {size} bytes failed: {(Errno)(-rc)}");
    }

    /// <summary>The process address.</summary>
    internal nint Address => _memory.DangerousGetHandle();

    /// <summary>The process address as a uAPI <c>vaddr</c>.</summary>
    internal ulong Vaddr => (ulong)Address;

    /// <summary>The size in bytes.</summary>
    internal ulong Size => _memory.Length;

    /// <summary>The size in bytes.</summary>
    internal int Length => checked((int)_memory.Length);

    /// <summary>The memory as the CPU sees it.</summary>
    internal unsafe Span<byte> Span => new((void*)Address, Length);

    internal byte[] Read(int offset, int count) => Span.Slice(offset, count).ToArray();

    internal void Write(int offset, byte[] bytes) => bytes.CopyTo(Span[offset..]);

    public void Dispose() => _memory.Dispose();
}
