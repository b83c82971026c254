// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int EFD_SEMAPHORE = 0x1;
    internal const int EFD_NONBLOCK = 0x800;
    internal const int EFD_CLOEXEC = 0x80000;

    [LibraryImport(Name, EntryPoint = "eventfd", SetLastError = true)]
    internal static partial SafeFileHandle eventfd(uint initialValue, int flags);

    /// <summary>Reads an eventfd's 8-byte counter; EINTR retried. Returns 8 or <c>-errno</c> (<c>-EAGAIN</c> when
    /// a non-blocking eventfd is at 0).</summary>
    internal static int EventFdRead(SafeHandle fd, out ulong value)
    {
        ulong buffer;
        nint rc;
        do
        {
            rc = Result(read(fd, (byte*)&buffer, sizeof(ulong)));
        }
        while (rc == -(int)Errno.EINTR);
        value = rc == sizeof(ulong) ? buffer : 0;
        return (int)rc;
    }

    /// <summary>Adds <paramref name="value"/> to an eventfd's counter; EINTR retried. Returns 8 or <c>-errno</c>.</summary>
    internal static int EventFdWrite(SafeHandle fd, ulong value)
    {
        nint rc;
        do
        {
            rc = Result(write(fd, (byte*)&value, sizeof(ulong)));
        }
        while (rc == -(int)Errno.EINTR);
        return (int)rc;
    }
}
