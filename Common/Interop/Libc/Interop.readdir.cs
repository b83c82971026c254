// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int AT_SYMLINK_NOFOLLOW = 0x100;

    // struct dirent64 on 64-bit glibc: d_ino u64 @0, d_off s64 @8, d_reclen u16 @16, d_type u8 @18, d_name @19.
    internal const int DirentNameOffset = 19;

    [LibraryImport(Name, EntryPoint = "opendir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint opendir(string path);

    [LibraryImport(Name, EntryPoint = "readdir64", SetLastError = true)]
    internal static partial byte* readdir(nint directory);

    [LibraryImport(Name, EntryPoint = "closedir", SetLastError = true)]
    internal static partial int closedir(nint directory);
}
