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

    // Interrupt-wait hot path: raw-fd forms without SetLastError (see ioctl_raw); the callers below hold one SafeHandle
    // reference around the call and read errno before releasing it.
    [LibraryImport(Name, EntryPoint = "read")]
    private static partial nint read_raw(int fd, byte* buffer, nuint count);

    [LibraryImport(Name, EntryPoint = "write")]
    private static partial nint write_raw(int fd, byte* buffer, nuint count);

    /// <summary>Reads an eventfd's 8-byte counter; EINTR retried. Returns 8 or <c>-errno</c> (<c>-EAGAIN</c> when
    /// a non-blocking eventfd is at 0).</summary>
    internal static int EventFdRead(SafeHandle fd, out ulong value)
    {
        ulong buffer = 0;
        nint rc = EventFdTransfer(fd, &buffer, write: false);
        value = rc == sizeof(ulong) ? buffer : 0;
        return (int)rc;
    }

    /// <summary>Adds <paramref name="value"/> to an eventfd's counter; EINTR retried. Returns 8 or <c>-errno</c>.</summary>
    internal static int EventFdWrite(SafeHandle fd, ulong value) => (int)EventFdTransfer(fd, &value, write: true);

    private static nint EventFdTransfer(SafeHandle fd, ulong* value, bool write)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            int raw = (int)fd.DangerousGetHandle();
            nint rc;
            do
            {
                rc = RawResult(write ? write_raw(raw, (byte*)value, sizeof(ulong)) : read_raw(raw, (byte*)value, sizeof(ulong)));
            }
            while (rc == -(int)Errno.EINTR);
            return rc;
        }
        finally
        {
            fd.DangerousRelease();
        }
    }
}
