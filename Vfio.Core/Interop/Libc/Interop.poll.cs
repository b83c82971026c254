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
}
