// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int SOL_SOCKET = 1;
    internal const int SCM_RIGHTS = 1;
    internal const int MSG_DONTWAIT = 0x40;
    internal const int MSG_NOSIGNAL = 0x4000;
    internal const int MSG_CTRUNC = 0x8;
    internal const int MSG_TRUNC = 0x20;
    internal const int MSG_CMSG_CLOEXEC = 0x40000000;

    /// <summary>The most fds one SCM_RIGHTS message may carry (<c>SCM_MAX_FD</c>).</summary>
    internal const int SCM_MAX_FD = 253;

    /// <summary><c>struct iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct iovec
    {
        internal void* iov_base;
        internal nuint iov_len;
    }

    /// <summary><c>struct msghdr</c> (64-bit Linux: 56 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct msghdr
    {
        internal void* msg_name;
        internal uint msg_namelen;
        internal iovec* msg_iov;
        internal nuint msg_iovlen;
        internal void* msg_control;
        internal nuint msg_controllen;
        internal int msg_flags;
    }

    /// <summary><c>struct cmsghdr</c> (64-bit Linux: 16 bytes, data follows aligned to 8).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct cmsghdr
    {
        internal nuint cmsg_len;
        internal int cmsg_level;
        internal int cmsg_type;
    }

    internal static int CMSG_ALIGN(int length) => (length + sizeof(nuint) - 1) & ~(sizeof(nuint) - 1);

    internal static int CMSG_SPACE(int dataLength) => CMSG_ALIGN(sizeof(cmsghdr)) + CMSG_ALIGN(dataLength);

    internal static int CMSG_LEN(int dataLength) => CMSG_ALIGN(sizeof(cmsghdr)) + dataLength;

    [LibraryImport(Name, EntryPoint = "sendmsg", SetLastError = true)]
    internal static partial nint sendmsg(SafeHandle socket, msghdr* message, int flags);

    [LibraryImport(Name, EntryPoint = "recvmsg", SetLastError = true)]
    internal static partial nint recvmsg(SafeHandle socket, msghdr* message, int flags);
}
