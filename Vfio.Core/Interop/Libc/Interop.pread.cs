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
}
