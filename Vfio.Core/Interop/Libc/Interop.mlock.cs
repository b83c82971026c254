// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int MADV_DONTFORK = 10;
    internal const int MADV_HUGEPAGE = 14;

    [LibraryImport(Name, EntryPoint = "mlock", SetLastError = true)]
    internal static partial int mlock(nint address, nuint length);

    [LibraryImport(Name, EntryPoint = "madvise", SetLastError = true)]
    internal static partial int madvise(nint address, nuint length, int advice);
}
