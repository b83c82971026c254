// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The kernel's <c>vfio_virqfd</c>: a user eventfd that, when signalled, makes the kernel consume its count and run
/// a handler (unmask INTx, mask or unmask a platform line) — KVM's resample path. A watcher thread waits on a
/// private duplicate of the eventfd and runs the handler under the kernel lock; an event already pending at
/// registration runs it at once, as in the kernel.
/// </summary>
internal sealed class VirqFd : IDisposable
{
    private readonly SafeFileHandle _fd;
    private readonly SafeFileHandle _cancel;
    private bool _disposed;

    private VirqFd(SafeFileHandle fd, SafeFileHandle cancel)
    {
        _fd = fd;
        _cancel = cancel;
    }

    /// <summary>Registers a virqfd on <paramref name="userFd"/>: <c>-EBADF</c> when it is not open, <c>-EINVAL</c>
    /// when it is not an eventfd.</summary>
    internal static int Create(SimulatedKernel kernel, int userFd, Action handler, out VirqFd? virqfd)
    {
        virqfd = null;
        // eventfd_ctx_fileget's errors; the watcher holds its own duplicate.
        int fd = SimEventFd.Duplicate(userFd);
        if (fd < 0)
        {
            return fd;
        }
        SafeFileHandle cancel = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (cancel.IsInvalid)
        {
            int errno = Libc.LastErrno;
            cancel.Dispose();
            _ = Libc.close(fd);
            return -errno;
        }
        var created = new VirqFd(new SafeFileHandle(fd, ownsHandle: true), cancel);
        var thread = new Thread(() => created.Run(kernel, handler)) { IsBackground = true, Name = "vfio-virqfd" };
        thread.Start();
        virqfd = created;
        return 0;
    }

    private void Run(SimulatedKernel kernel, Action handler)
    {
        try
        {
            while (EventFdWait.Wait(_fd, _cancel) == 1)
            {
                if (!EventFdWait.TryConsume(_fd))
                {
                    continue;
                }
                bool ran = kernel.RunDeviceWork(
                    static s =>
                    {
                        if (!s.Self._disposed)
                        {
                            s.Handler();
                        }
                    },
                    (Self: this, Handler: handler));
                if (!ran)
                {
                    break;
                }
            }
        }
        finally
        {
            _fd.Dispose();
            _cancel.Dispose();
        }
    }

    /// <summary>Unregisters (called under the kernel lock): the handler never runs again; the watcher exits and
    /// closes its fds.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            _ = Libc.EventFdWrite(_cancel, 1);
        }
        catch (ObjectDisposedException)
        {
            // The watcher already stopped (its kernel is gone) and closed the cancel eventfd.
        }
    }
}
