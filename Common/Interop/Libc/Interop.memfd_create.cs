// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const uint MFD_CLOEXEC = 0x1;

    [LibraryImport(Name, EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeFileHandle memfd_create(string name, uint flags);

    [LibraryImport(Name, EntryPoint = "ftruncate64", SetLastError = true)]
    internal static partial int ftruncate(SafeHandle fd, long length);
}
