// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const int EPOLL_CLOEXEC = 0x80000;
    internal const int EPOLL_CTL_ADD = 1;
    internal const int EPOLL_CTL_DEL = 2;
    internal const int EPOLL_CTL_MOD = 3;
    internal const uint EPOLLIN = 0x001;
    internal const uint EPOLLERR = 0x008;
    internal const uint EPOLLHUP = 0x010;
    internal const uint EPOLLRDHUP = 0x2000;
    internal const uint EPOLLONESHOT = 1u << 30;
    internal const uint EPOLLET = 1u << 31;

    // struct epoll_event is packed on x86-64 only (12 bytes, data at 4); elsewhere it is 16 bytes, data at 8.
    // The buffer is handled as raw bytes with the stride of the running architecture.
    internal static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    internal static readonly int EpollEventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport(Name, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial SafeFileHandle epoll_create1(int flags);

    [LibraryImport(Name, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static partial int epoll_ctl(SafeHandle epfd, int operation, SafeHandle fd, byte* evt);

    [LibraryImport(Name, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static partial int epoll_wait(SafeHandle epfd, byte* events, int maxEvents, int timeoutMilliseconds);

    /// <summary>The buffer size <see cref="EpollWait"/> needs for <paramref name="maxEvents"/> events.</summary>
    internal static int EpollBufferSize(int maxEvents) => maxEvents * EpollEventSize;

    /// <summary><c>epoll_ctl</c> with one <c>struct epoll_event</c> built in this architecture's layout. Returns 0 or <c>-errno</c>.</summary>
    internal static int EpollControl(SafeHandle epfd, int operation, SafeHandle fd, uint events, ulong data)
    {
        byte* evt = stackalloc byte[16];
        *(uint*)evt = events;
        Unsafe.WriteUnaligned(evt + EpollEventDataOffset, data);
        return Result(epoll_ctl(epfd, operation, fd, evt));
    }

    /// <summary><c>epoll_wait</c> into <paramref name="events"/>. Returns the number of events or <c>-errno</c>.</summary>
    internal static int EpollWait(SafeHandle epfd, Span<byte> events, int timeoutMilliseconds)
    {
        fixed (byte* p = events)
        {
            return Result(epoll_wait(epfd, p, events.Length / EpollEventSize, timeoutMilliseconds));
        }
    }

    /// <summary>The user data of event <paramref name="index"/> in an <see cref="EpollWait"/> buffer.</summary>
    internal static ulong EpollEventData(ReadOnlySpan<byte> events, int index)
        => Unsafe.ReadUnaligned<ulong>(ref Unsafe.AsRef(in events[(index * EpollEventSize) + EpollEventDataOffset]));
}
