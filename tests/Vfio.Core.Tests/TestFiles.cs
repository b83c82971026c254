// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests;

/// <summary>Real files for tests of real syscalls: memfds and temporary files.</summary>
internal static class TestFiles
{
    internal static SafeFileHandle MemFd(int size, string name = "vfio-test")
    {
        SafeFileHandle fd = Libc.memfd_create(name, Libc.MFD_CLOEXEC);
        if (fd.IsInvalid)
        {
            int errno = Libc.LastErrno;
            fd.Dispose();
            throw new VfioException((Errno)errno, "memfd_create", name);
        }
        if (Libc.ftruncate(fd, size) != 0)
        {
            int errno = Libc.LastErrno;
            fd.Dispose();
            throw new VfioException((Errno)errno, "ftruncate", name);
        }
        return fd;
    }

    internal static string TempPath(string suffix) => Path.Combine(Path.GetTempPath(), $"vfio-{Environment.ProcessId}-{Guid.NewGuid():N}{suffix}");
}
