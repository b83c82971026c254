// SPDX-License-Identifier: MIT
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Vfio.Samples.FdPassing;

/// <summary>A connected pair of Unix stream sockets (<c>socketpair(2)</c>, which .NET does not expose): the launcher
/// keeps one end as a <see cref="Socket"/>, the worker gets the other as an fd number.</summary>
internal static partial class UnixSocketPair
{
    private const int AF_UNIX = 1;
    private const int SOCK_STREAM = 1;
    private const int SOCK_CLOEXEC = 0x80000;
    private const int F_SETFD = 2;
    private const int FD_CLOEXEC = 1;

    /// <summary>Creates the pair, both ends close-on-exec.</summary>
    /// <returns>The launcher's end, and the worker's end as a handle.</returns>
    public static (Socket Launcher, SafeSocketHandle Worker) Create()
    {
        Span<int> fds = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }
        var worker = new SafeSocketHandle(fds[1], ownsHandle: true);
        return (new Socket(new SafeSocketHandle(fds[0], ownsHandle: true)), worker);
    }

    /// <summary>Makes <paramref name="handle"/> inheritable by the next process started (or not again).</summary>
    /// <param name="handle">The fd.</param>
    /// <param name="inheritable">True to clear close-on-exec, false to set it.</param>
    public static void SetInheritable(SafeSocketHandle handle, bool inheritable)
    {
        if (fcntl((int)handle.DangerousGetHandle(), F_SETFD, inheritable ? 0 : FD_CLOEXEC) != 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socketpair(int domain, int type, int protocol, Span<int> sv);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);
}
