// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    // Not RandomAccess.Read/Write: .NET 10 rejects non-seekable handles there and .NET 11 ignores the offset.
    [LibraryImport(Name, EntryPoint = "pread64", SetLastError = true)]
    internal static partial nint pread(SafeHandle fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Name, EntryPoint = "pwrite64", SetLastError = true)]
    internal static partial nint pwrite(SafeHandle fd, byte* buffer, nuint count, long offset);

    // Hot-path forms on a raw fd without SetLastError (see ioctl_raw).
    [LibraryImport(Name, EntryPoint = "pread64")]
    internal static partial nint pread_raw(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Name, EntryPoint = "pwrite64")]
    internal static partial nint pwrite_raw(int fd, byte* buffer, nuint count, long offset);

    /// <summary><c>preadv2</c> flag: fail with <c>EAGAIN</c> instead of blocking, even on a blocking fd.</summary>
    internal const int RWF_NOWAIT = 0x8;

    [LibraryImport(Name, EntryPoint = "preadv2", SetLastError = true)]
    internal static partial nint preadv2(SafeHandle fd, iovec* iov, int count, long offset, int flags);
}
