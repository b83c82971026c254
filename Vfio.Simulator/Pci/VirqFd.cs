// SPDX-License-Identifier: MIT
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
    private readonly int _fd;
    private readonly int _cancel;
    private bool _disposed;

    private VirqFd(int fd, int cancel)
    {
        _fd = fd;
        _cancel = cancel;
    }

    /// <summary>Registers a virqfd on <paramref name="userFd"/>: <c>-EBADF</c> when it is not open, <c>-EINVAL</c>
    /// when it is not an eventfd.</summary>
    internal static int Create(SimulatedKernel kernel, int userFd, Action handler, out VirqFd? virqfd)
    {
        virqfd = null;
        // Validation only (eventfd_ctx_fileget's errors); the watcher holds its own duplicate.
        SimEventFd? check = null;
        int rc;
        try
        {
            rc = SimEventFd.Get(userFd, out check);
        }
        finally
        {
            check?.Dispose();
        }
        if (rc < 0)
        {
            return rc;
        }
        int fd = Libc.fcntl(userFd, Libc.F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
        {
            return -Libc.LastErrno;
        }
        int cancel = EventFdWait.Create();
        if (cancel < 0)
        {
            _ = Libc.close(fd);
            return cancel;
        }
        var created = new VirqFd(fd, cancel);
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
            _ = Libc.close(_fd);
            _ = Libc.close(_cancel);
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
        _ = Libc.SignalEventFd(_cancel, 1);
    }
}
