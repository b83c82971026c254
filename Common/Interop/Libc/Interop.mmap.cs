// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int PROT_NONE = 0x0;
    internal const int PROT_READ = 0x1;
    internal const int PROT_WRITE = 0x2;
    internal const int MAP_SHARED = 0x01;
    internal const int MAP_PRIVATE = 0x02;
    internal const int MAP_FIXED = 0x10;
    internal const int MAP_ANONYMOUS = 0x20;
    internal const int MAP_HUGETLB = 0x40000;
    internal static readonly nint MAP_FAILED = -1;

    [LibraryImport(Name, EntryPoint = "mmap64", SetLastError = true)]
    internal static partial nint mmap(nint address, nuint length, int protection, int flags, SafeHandle fd, long offset);

    [LibraryImport(Name, EntryPoint = "mmap64", SetLastError = true)]
    internal static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Name, EntryPoint = "munmap", SetLastError = true)]
    internal static partial int munmap(nint address, nuint length);

    /// <summary>Refuses a mapping alignment that is not a power of two of at least a page (a caller's error).</summary>
    internal static void CheckAlignment(ulong alignment)
    {
        if (!ulong.IsPow2(alignment) || alignment < (ulong)Environment.SystemPageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment,
                $"A mapping's alignment must be a power of two of at least the {Environment.SystemPageSize}-byte page.");
        }
    }

    /// <summary>
    /// Maps <paramref name="length"/> bytes at an address aligned to <paramref name="alignment"/> (a power of two, at
    /// least a page): reserves <c>length + alignment</c> bytes of address space with a <c>PROT_NONE</c> anonymous
    /// mapping, maps over its aligned part with <c>MAP_FIXED</c> (<paramref name="fd"/>, or anonymous memory when it is
    /// null), then releases the head and tail of the reservation. Returns 0 with the <paramref name="address"/>, or
    /// <c>-errno</c> with <paramref name="address"/> 0 and the whole reservation released.
    /// </summary>
    internal static int MapAligned(nuint length, nuint alignment, int protection, int flags, SafeHandle? fd, long offset, out nint address)
    {
        address = 0;
        nuint span = length + alignment;
        nint reserved = mmap(0, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (reserved == MAP_FAILED)
        {
            return -LastErrno;
        }
        nint aligned = (nint)(((nuint)reserved + alignment - 1) & ~(alignment - 1));
        nint mapped = fd is null
            ? mmap(aligned, length, protection, flags | MAP_FIXED | MAP_ANONYMOUS, -1, 0)
            : mmap(aligned, length, protection, flags | MAP_FIXED, fd, offset);
        if (mapped == MAP_FAILED)
        {
            int errno = LastErrno;
            // The reservation (or the hole a failed MAP_FIXED left in it) is ours alone: release all of it.
            _ = munmap(reserved, span);
            return -errno;
        }
        nuint head = (nuint)(aligned - reserved);
        if (head != 0)
        {
            _ = munmap(reserved, head);
        }
        nuint tail = alignment - head;
        if (tail != 0)
        {
            _ = munmap(aligned + (nint)length, tail);
        }
        address = aligned;
        return 0;
    }

    /// <summary>A private anonymous read/write mapping of <paramref name="length"/> zeroed bytes. Returns 0 with the
    /// <paramref name="address"/>, or <c>-errno</c> with <paramref name="address"/> 0.</summary>
    internal static int MapAnonymous(nuint length, out nint address)
    {
        address = mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (address == MAP_FAILED)
        {
            address = 0;
            return -LastErrno;
        }
        return 0;
    }
}
