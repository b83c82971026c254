// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// Linux errno values (asm-generic/errno-base.h and errno.h; the same numbers on x86-64, arm64, ppc64 and riscv
/// for every value listed here) as the kernel reports them for VFIO and iommufd calls.
/// </summary>
public enum Errno
{
    /// <summary>No error.</summary>
    None = 0,
    /// <summary>Operation not permitted.</summary>
    EPERM = 1,
    /// <summary>No such file or directory (or, from iommufd, no such object id or IOVA).</summary>
    ENOENT = 2,
    /// <summary>No such process.</summary>
    ESRCH = 3,
    /// <summary>Interrupted system call.</summary>
    EINTR = 4,
    /// <summary>I/O error.</summary>
    EIO = 5,
    /// <summary>No such device or address.</summary>
    ENXIO = 6,
    /// <summary>Argument list too long (iommufd: non-zero bytes in an unknown structure tail).</summary>
    E2BIG = 7,
    /// <summary>Bad file descriptor.</summary>
    EBADF = 9,
    /// <summary>Try again (would block).</summary>
    EAGAIN = 11,
    /// <summary>Out of memory.</summary>
    ENOMEM = 12,
    /// <summary>Permission denied.</summary>
    EACCES = 13,
    /// <summary>Bad address.</summary>
    EFAULT = 14,
    /// <summary>Device or resource busy.</summary>
    EBUSY = 16,
    /// <summary>Object exists (e.g. an overlapping DMA mapping).</summary>
    EEXIST = 17,
    /// <summary>Cross-device link.</summary>
    EXDEV = 18,
    /// <summary>No such device.</summary>
    ENODEV = 19,
    /// <summary>Not a directory.</summary>
    ENOTDIR = 20,
    /// <summary>Is a directory.</summary>
    EISDIR = 21,
    /// <summary>Invalid argument.</summary>
    EINVAL = 22,
    /// <summary>Too many open files in the system.</summary>
    ENFILE = 23,
    /// <summary>Too many open files.</summary>
    EMFILE = 24,
    /// <summary>Inappropriate ioctl for device.</summary>
    ENOTTY = 25,
    /// <summary>No space left on device (Type1: the DMA entry limit is reached).</summary>
    ENOSPC = 28,
    /// <summary>Broken pipe.</summary>
    EPIPE = 32,
    /// <summary>Result out of range.</summary>
    ERANGE = 34,
    /// <summary>Resource deadlock would occur.</summary>
    EDEADLK = 35,
    /// <summary>Function not implemented.</summary>
    ENOSYS = 38,
    /// <summary>Too many symbolic links.</summary>
    ELOOP = 40,
    /// <summary>No data available.</summary>
    ENODATA = 61,
    /// <summary>Value too large for the defined data type.</summary>
    EOVERFLOW = 75,
    /// <summary>File descriptor in bad state.</summary>
    EBADFD = 77,
    /// <summary>Socket operation on a non-socket.</summary>
    ENOTSOCK = 88,
    /// <summary>Message too long (iommufd: the caller's array is too small; the count needed was written back).</summary>
    EMSGSIZE = 90,
    /// <summary>Operation not supported.</summary>
    EOPNOTSUPP = 95,
    /// <summary>Address already in use (iommufd: an IOVA range is already mapped or reserved).</summary>
    EADDRINUSE = 98,
    /// <summary>Connection refused.</summary>
    ECONNREFUSED = 111,
    /// <summary>Operation canceled.</summary>
    ECANCELED = 125,
}
