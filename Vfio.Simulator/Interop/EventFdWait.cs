// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Simulator.Interop;

/// <summary>What the kernel's virqfd needs from an eventfd: wait until it (or a cancel eventfd) is readable, and
/// consume its count without blocking even if the fd is blocking (<c>preadv2</c> with <c>RWF_NOWAIT</c>).</summary>
internal static unsafe partial class EventFdWait
{
    private const int EFD_NONBLOCK = 0x800;
    private const int EFD_CLOEXEC = 0x80000;
    private const short POLLIN = 0x1;
    private const int RWF_NOWAIT = 0x8;
    private const int EINTR = 4;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int eventfd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "preadv2", SetLastError = true)]
    private static partial nint preadv2(int fd, IoVec* iov, int count, long offset, int flags);

    /// <summary>A private non-blocking eventfd (the watcher's cancel signal). Returns the fd or <c>-errno</c>.</summary>
    internal static int Create()
    {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Blocks until <paramref name="fd"/> or <paramref name="cancel"/> is readable: 1 for the fd, 0 for
    /// cancel (or an error/hang-up on either), <c>-errno</c> on failure.</summary>
    internal static int Wait(int fd, int cancel)
    {
        PollFd* fds = stackalloc PollFd[2];
        while (true)
        {
            fds[0] = new PollFd { Fd = fd, Events = POLLIN };
            fds[1] = new PollFd { Fd = cancel, Events = POLLIN };
            int rc = poll(fds, 2, -1);
            if (rc < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }
                return -errno;
            }
            if (fds[1].Revents != 0)
            {
                return 0;
            }
            if ((fds[0].Revents & POLLIN) != 0)
            {
                return 1;
            }
            if (fds[0].Revents != 0)
            {
                return 0;
            }
        }
    }

    /// <summary>Takes the eventfd's count if it has one, never blocking. True when a count was taken.</summary>
    internal static bool TryConsume(int fd)
    {
        ulong value;
        IoVec iov = new() { Base = &value, Length = sizeof(ulong) };
        return preadv2(fd, &iov, 1, -1, RWF_NOWAIT) == sizeof(ulong);
    }
}
