// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Interop;

/// <summary>What the kernel's virqfd needs from an eventfd: wait until it (or a cancel eventfd) is readable, and
/// consume its count without blocking even if the fd is blocking (<c>preadv2</c> with <c>RWF_NOWAIT</c>).</summary>
internal static unsafe class EventFdWait
{
    /// <summary>Blocks until <paramref name="fd"/> or <paramref name="cancel"/> is readable: 1 for the fd, 0 for
    /// cancel (or an error/hang-up on either), <c>-errno</c> on failure. Both stay open meanwhile.</summary>
    internal static int Wait(SafeHandle fd, SafeHandle cancel)
    {
        bool fdAdded = false, cancelAdded = false;
        try
        {
            fd.DangerousAddRef(ref fdAdded);
            cancel.DangerousAddRef(ref cancelAdded);
            Libc.pollfd* fds = stackalloc Libc.pollfd[2];
            while (true)
            {
                fds[0] = new Libc.pollfd { fd = (int)fd.DangerousGetHandle(), events = Libc.POLLIN };
                fds[1] = new Libc.pollfd { fd = (int)cancel.DangerousGetHandle(), events = Libc.POLLIN };
                int rc = Libc.Result(Libc.poll(fds, 2, -1));
                if (rc == -(int)Errno.EINTR)
                {
                    continue;
                }
                if (rc < 0)
                {
                    return rc;
                }
                if (fds[1].revents != 0)
                {
                    return 0;
                }
                if ((fds[0].revents & Libc.POLLIN) != 0)
                {
                    return 1;
                }
                if (fds[0].revents != 0)
                {
                    return 0;
                }
            }
        }
        finally
        {
            if (cancelAdded)
            {
                cancel.DangerousRelease();
            }
            if (fdAdded)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>Takes the eventfd's count if it has one, never blocking. True when a count was taken.</summary>
    internal static bool TryConsume(SafeHandle fd)
    {
        ulong value;
        Libc.iovec iov = new() { iov_base = &value, iov_len = sizeof(ulong) };
        return Libc.preadv2(fd, &iov, 1, -1, Libc.RWF_NOWAIT) == sizeof(ulong);
    }
}
