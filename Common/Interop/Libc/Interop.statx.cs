// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int AT_FDCWD = -100;
    internal const int AT_EMPTY_PATH = 0x1000;
    internal const uint STATX_TYPE = 0x1;
    internal const uint STATX_MODE = 0x2;
    internal const uint STATX_INO = 0x100;
    internal const uint STATX_BASIC_STATS = 0x7FF;

    internal const uint S_IFMT = 0xF000;
    internal const uint S_IFCHR = 0x2000;
    internal const uint S_IFSOCK = 0xC000;
    internal const uint S_IFREG = 0x8000;
    internal const uint S_IFDIR = 0x4000;
    internal const uint S_IFIFO = 0x1000;

    /// <summary><c>struct statx</c> (include/uapi/linux/stat.h): the same 256-byte layout on every architecture,
    /// unlike <c>struct stat</c>. Only the fields the library reads are named.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    internal struct statx_t
    {
        [FieldOffset(0)] internal uint stx_mask;
        [FieldOffset(16)] internal uint stx_nlink;
        [FieldOffset(20)] internal uint stx_uid;
        [FieldOffset(24)] internal uint stx_gid;
        [FieldOffset(28)] internal ushort stx_mode;
        [FieldOffset(32)] internal ulong stx_ino;
        [FieldOffset(40)] internal ulong stx_size;
        [FieldOffset(128)] internal uint stx_rdev_major;
        [FieldOffset(132)] internal uint stx_rdev_minor;
        [FieldOffset(136)] internal uint stx_dev_major;
        [FieldOffset(140)] internal uint stx_dev_minor;
    }

    [LibraryImport(Name, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(SafeHandle dirfd, string path, int flags, uint mask, statx_t* buffer);

    [LibraryImport(Name, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(int dirfd, string path, int flags, uint mask, statx_t* buffer);

    /// <summary>The inode of an open fd (<c>statx</c> with <c>AT_EMPTY_PATH</c>), or <c>-errno</c>.</summary>
    internal static long Inode(int fd)
    {
        statx_t stx;
        return statx(fd, string.Empty, AT_EMPTY_PATH, STATX_INO, &stx) == 0 ? (long)stx.stx_ino : -LastErrno;
    }
}
