// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    // ioctl(2) is variadic: int ioctl(int fd, unsigned long request, ...). On x86-64 and arm64 a fixed
    // pointer-sized third argument is passed as the variadic one (ppc64le is unverified).
    [LibraryImport(Name, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int ioctl(SafeHandle fd, nuint request, nint argument);

    [LibraryImport(Name, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int ioctl(SafeHandle fd, nuint request, void* argument);

    // Hot-path forms on a raw fd without SetLastError: the caller holds a SafeHandle reference around the call and reads
    // errno itself (RawResult) before releasing it; see LinuxKernel.
    [LibraryImport(Name, EntryPoint = "ioctl")]
    internal static partial int ioctl_raw(int fd, nuint request, nint argument);

    [LibraryImport(Name, EntryPoint = "ioctl")]
    internal static partial int ioctl_raw(int fd, nuint request, void* argument);
}
