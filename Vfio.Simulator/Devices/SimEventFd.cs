// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The model's reference to a user eventfd (the kernel's <c>eventfd_ctx</c>): taken from an fd number passed in a
/// struct (SET_IRQS, IOEVENTFD), held as a private duplicate so the user may close theirs, and signalled when the
/// device raises the interrupt.
/// </summary>
internal sealed class SimEventFd : IDisposable
{
    private int _fd;

    private SimEventFd(int fd) => _fd = fd;

    /// <summary>Takes a reference to the eventfd <paramref name="fd"/>, as <c>eventfd_ctx_fdget</c> does: <c>-EBADF</c>
    /// when it is not an open fd, <c>-EINVAL</c> when it is not an eventfd.</summary>
    internal static int Get(int fd, out SimEventFd? eventFd)
    {
        eventFd = null;
        if (fd < 0)
        {
            return -(int)Errno.EBADF;
        }
        int rc = LinuxKernel.Instance.ReadLink($"/proc/self/fd/{fd}", out string target);
        if (rc < 0)
        {
            return -(int)Errno.EBADF;
        }
        if (target != "anon_inode:[eventfd]")
        {
            return -(int)Errno.EINVAL;
        }
        int copy = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
        {
            return -Libc.LastErrno;
        }
        eventFd = new SimEventFd(copy);
        return 0;
    }

    /// <summary>True when both refer to the same eventfd (the same open file).</summary>
    internal bool SameAs(int fd) => _fd >= 0 && Libc.Inode(fd) == Libc.Inode(_fd);

    /// <summary>Signals the eventfd (adds 1), as the kernel's <c>eventfd_signal</c>.</summary>
    internal void Signal()
    {
        if (_fd >= 0)
        {
            _ = Libc.SignalEventFd(_fd, 1);
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = Libc.close(fd);
        }
    }
}
