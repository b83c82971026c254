// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int AF_UNIX = 1;
    internal const int SOCK_SEQPACKET = 5;
    internal const int SOCK_CLOEXEC = 0x80000;

    [LibraryImport(Name, EntryPoint = "socketpair", SetLastError = true)]
    internal static partial int socketpair(int domain, int type, int protocol, int* fds);

    /// <summary>A close-on-exec <c>AF_UNIX</c> socketpair of <paramref name="type"/>. Returns 0 with both fds (owned by
    /// the caller), or <c>-errno</c> with both -1.</summary>
    internal static int SocketPair(int type, out int first, out int second)
    {
        int* fds = stackalloc int[2];
        int rc = Result(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds));
        first = rc == 0 ? fds[0] : -1;
        second = rc == 0 ? fds[1] : -1;
        return rc;
    }
}
