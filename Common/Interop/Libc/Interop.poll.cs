// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    internal const short POLLIN = 0x001;
    internal const short POLLOUT = 0x004;
    internal const short POLLERR = 0x008;
    internal const short POLLHUP = 0x010;
    internal const short POLLNVAL = 0x020;

    /// <summary><c>struct pollfd</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct pollfd
    {
        internal int fd;
        internal short events;
        internal short revents;
    }

    [LibraryImport(Name, EntryPoint = "poll", SetLastError = true)]
    internal static partial int poll(pollfd* fds, nuint count, int timeoutMilliseconds);

    // Without SetLastError for PollOne (interrupt-wait hot path): errno is read right after the call (RawResult).
    [LibraryImport(Name, EntryPoint = "poll")]
    private static partial int poll_raw(pollfd* fds, nuint count, int timeoutMilliseconds);

    /// <summary>Waits up to <paramref name="timeoutMilliseconds"/> (-1: for ever) for <paramref name="events"/> on one
    /// fd, keeping the fd open meanwhile. Returns 1 when ready, 0 on timeout, or <c>-errno</c> (including
    /// <c>-EINTR</c>: the caller decides how to continue with its deadline).</summary>
    internal static int PollOne(SafeHandle fd, short events, int timeoutMilliseconds)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            pollfd pfd = new() { fd = (int)fd.DangerousGetHandle(), events = events };
            return RawResult(poll_raw(&pfd, 1, timeoutMilliseconds));
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }
}
