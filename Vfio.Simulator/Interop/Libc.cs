// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Simulator.Interop;

/// <summary>The libc calls the simulator needs for its placeholder fds (socketpairs) and their release detection.</summary>
internal static unsafe partial class Libc
{
    private const string Name = "libc";

    internal const int AF_UNIX = 1;
    internal const int SOCK_SEQPACKET = 5;
    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int EPOLL_CLOEXEC = 0x80000;
    internal const int EPOLL_CTL_ADD = 1;
    internal const int EPOLL_CTL_DEL = 2;
    internal const uint EPOLLHUP = 0x010;
    internal const uint EPOLLRDHUP = 0x2000;
    internal const int AT_EMPTY_PATH = 0x1000;
    internal const uint STATX_INO = 0x100;
    internal const int F_DUPFD_CLOEXEC = 1030;

    [LibraryImport(Name, EntryPoint = "socketpair", SetLastError = true)]
    internal static partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Name, EntryPoint = "close", SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Name, EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int fcntl(int fd, int command, int argument);

    [LibraryImport(Name, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Name, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int operation, int fd, byte* evt);

    [LibraryImport(Name, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static partial int epoll_wait(int epfd, byte* events, int maxEvents, int timeoutMilliseconds);

    [LibraryImport(Name, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Name, EntryPoint = "write", SetLastError = true)]
    internal static partial nint write(int fd, byte* buffer, nuint count);

    internal static int LastErrno => Marshal.GetLastPInvokeError();

    // struct epoll_event: packed (12 bytes, data at 4) on x86-64, 16 bytes with data at 8 elsewhere.
    private static readonly int s_eventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    private static readonly int s_dataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    /// <summary>Creates a close-on-exec seqpacket socketpair. Returns 0 or <c>-errno</c>.</summary>
    internal static int SocketPair(out int first, out int second)
    {
        int* fds = stackalloc int[2];
        int rc = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
        first = rc == 0 ? fds[0] : -1;
        second = rc == 0 ? fds[1] : -1;
        return rc == 0 ? 0 : -LastErrno;
    }

    /// <summary>The inode of an open fd (<c>statx</c> with <c>AT_EMPTY_PATH</c>), or <c>-errno</c>.</summary>
    internal static long Inode(int fd)
    {
        byte* buffer = stackalloc byte[256];
        if (statx(fd, string.Empty, AT_EMPTY_PATH, STATX_INO, buffer) != 0)
        {
            return -LastErrno;
        }
        return (long)*(ulong*)(buffer + 32);
    }

    /// <summary>Adds <paramref name="fd"/> to an epoll set watching for hang-up, with <paramref name="data"/>.</summary>
    internal static int WatchHangUp(int epfd, int fd, ulong data)
    {
        byte* evt = stackalloc byte[16];
        *(uint*)evt = EPOLLRDHUP | EPOLLHUP;
        *(ulong*)(evt + s_dataOffset) = data;
        return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, evt) == 0 ? 0 : -LastErrno;
    }

    /// <summary>Collects, without blocking, the data of every fd in the set that hung up.</summary>
    internal static int PollHangUps(int epfd, Span<ulong> data)
    {
        byte* events = stackalloc byte[64 * 16];
        int n = epoll_wait(epfd, events, Math.Min(64, data.Length), 0);
        if (n < 0)
        {
            return -LastErrno;
        }
        for (int i = 0; i < n; i++)
        {
            data[i] = *(ulong*)(events + (i * s_eventSize) + s_dataOffset);
        }
        return n;
    }

    /// <summary>Writes an eventfd's counter (a device raising an interrupt). Returns 8 or <c>-errno</c>.</summary>
    internal static int SignalEventFd(int fd, ulong count)
    {
        nint rc = write(fd, (byte*)&count, sizeof(ulong));
        return rc >= 0 ? (int)rc : -LastErrno;
    }
}
