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
}
