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

    /// <summary>
    /// <c>sendmsg</c> of <paramref name="data"/> with <paramref name="fds"/> as one SCM_RIGHTS control message (none
    /// when empty), <c>MSG_NOSIGNAL</c> added. Returns the bytes sent or <c>-errno</c>; EINTR retried.
    /// </summary>
    internal static nint SendWithRights(SafeHandle socket, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds, int flags)
    {
        if (fds.Length > SCM_MAX_FD)
        {
            throw new ArgumentOutOfRangeException(nameof(fds), fds.Length, $"At most {SCM_MAX_FD} fds fit one message.");
        }
        int controlLength = fds.Length == 0 ? 0 : CMSG_SPACE(fds.Length * sizeof(int));
        byte* control = stackalloc byte[CMSG_SPACE(SCM_MAX_FD * sizeof(int))];
        if (controlLength > 0)
        {
            new Span<byte>(control, controlLength).Clear();
            var header = (cmsghdr*)control;
            header->cmsg_len = (nuint)CMSG_LEN(fds.Length * sizeof(int));
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            fds.CopyTo(new Span<int>(control + CMSG_ALIGN(sizeof(cmsghdr)), fds.Length));
        }
        fixed (byte* p = data)
        {
            iovec iov = new() { iov_base = p, iov_len = (nuint)data.Length };
            msghdr message = new()
            {
                msg_iov = &iov,
                msg_iovlen = 1,
                msg_control = controlLength == 0 ? null : control,
                msg_controllen = (nuint)controlLength,
            };
            nint rc;
            do
            {
                rc = Result(sendmsg(socket, &message, flags | MSG_NOSIGNAL));
            }
            while (rc == -(int)Errno.EINTR);
            return rc;
        }
    }

    /// <summary>
    /// <c>recvmsg</c> into <paramref name="data"/>, collecting SCM_RIGHTS fds into <paramref name="fds"/> (which must
    /// hold <see cref="SCM_MAX_FD"/>) when <paramref name="acceptRights"/>; <c>MSG_CMSG_CLOEXEC</c> added. Returns the
    /// bytes received or <c>-errno</c>; EINTR retried. The caller owns the fds from the moment this returns — even
    /// when <paramref name="messageFlags"/> shows <c>MSG_CTRUNC</c>.
    /// </summary>
    internal static nint ReceiveWithRights(SafeHandle socket, Span<byte> data, bool acceptRights, Span<int> fds, out int fdCount, out int messageFlags, int flags)
    {
        fdCount = 0;
        messageFlags = 0;
        int controlLength = acceptRights ? CMSG_SPACE(SCM_MAX_FD * sizeof(int)) : 0;
        byte* control = stackalloc byte[CMSG_SPACE(SCM_MAX_FD * sizeof(int))];
        fixed (byte* p = data)
        {
            iovec iov = new() { iov_base = p, iov_len = (nuint)data.Length };
            msghdr message = new()
            {
                msg_iov = &iov,
                msg_iovlen = 1,
                msg_control = controlLength == 0 ? null : control,
                msg_controllen = (nuint)controlLength,
            };
            nint rc;
            do
            {
                rc = Result(recvmsg(socket, &message, flags | MSG_CMSG_CLOEXEC));
            }
            while (rc == -(int)Errno.EINTR);
            if (rc < 0)
            {
                return rc;
            }
            messageFlags = message.msg_flags;
            nuint offset = 0;
            while (controlLength > 0 && offset + (nuint)sizeof(cmsghdr) <= message.msg_controllen)
            {
                var header = (cmsghdr*)(control + offset);
                if (header->cmsg_len < (nuint)sizeof(cmsghdr))
                {
                    break;
                }
                if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS)
                {
                    int count = (int)((header->cmsg_len - (nuint)CMSG_ALIGN(sizeof(cmsghdr))) / sizeof(int));
                    int* received = (int*)((byte*)header + CMSG_ALIGN(sizeof(cmsghdr)));
                    for (int i = 0; i < count && fdCount < fds.Length; i++)
                    {
                        fds[fdCount++] = received[i];
                    }
                }
                offset += (nuint)CMSG_ALIGN((int)header->cmsg_len);
            }
            return rc;
        }
    }
}
