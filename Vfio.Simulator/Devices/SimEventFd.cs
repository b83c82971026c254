// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The model's reference to a user eventfd (the kernel's <c>eventfd_ctx</c>): taken from an fd number passed in a
/// struct (SET_IRQS, IOEVENTFD), held as a private duplicate so the user may close theirs, and signalled when the
/// device raises the interrupt.
/// </summary>
internal sealed class SimEventFd : IDisposable
{
    private readonly SafeFileHandle _fd;

    private SimEventFd(SafeFileHandle fd) => _fd = fd;

    /// <summary>Takes a reference to the eventfd <paramref name="fd"/>, as <c>eventfd_ctx_fdget</c> does: <c>-EBADF</c>
    /// when it is not an open fd, <c>-EINVAL</c> when it is not an eventfd.</summary>
    internal static int Get(int fd, out SimEventFd? eventFd)
    {
        eventFd = null;
        int copy = Duplicate(fd);
        if (copy < 0)
        {
            return copy;
        }
        eventFd = new SimEventFd(new SafeFileHandle(copy, ownsHandle: true));
        return 0;
    }

    /// <summary>A private close-on-exec duplicate of the eventfd <paramref name="fd"/> (owned by the caller), or
    /// <see cref="Get"/>'s <c>-errno</c>.</summary>
    internal static int Duplicate(int fd)
    {
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
        return Libc.Result(Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0));
    }

    /// <summary>True when both refer to the same eventfd (the same open file).</summary>
    internal bool SameAs(int fd)
    {
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            return Libc.Inode(fd) == Libc.Inode((int)_fd.DangerousGetHandle());
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    /// <summary>Signals the eventfd (adds 1), as the kernel's <c>eventfd_signal</c>.</summary>
    internal void Signal()
    {
        if (!_fd.IsClosed)
        {
            _ = Libc.EventFdWrite(_fd, 1);
        }
    }

    public void Dispose() => _fd.Dispose();
}
