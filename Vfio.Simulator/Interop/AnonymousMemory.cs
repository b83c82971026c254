// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Simulator.Interop;

/// <summary>
/// Private anonymous mappings that back the simulator's emulated region mappings: the <see cref="Vfio.Core.MemoryMapping"/>
/// handle must be real memory of the mapping's length, so code that reads the buffer directly touches harmless pages.
/// </summary>
internal static unsafe partial class AnonymousMemory
{
    private const int PROT_READ = 1;
    private const int PROT_WRITE = 2;
    private const int MAP_PRIVATE = 0x02;
    private const int MAP_ANONYMOUS = 0x20;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int munmap(void* address, nuint length);

    /// <summary>Maps <paramref name="length"/> zeroed bytes. Returns the address, or 0 with <paramref name="errno"/> set.</summary>
    internal static nint Map(ulong length, out int errno)
    {
        void* p = mmap(null, (nuint)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == (void*)-1)
        {
            errno = Marshal.GetLastPInvokeError();
            return 0;
        }
        errno = 0;
        return (nint)p;
    }

    /// <summary>Unmaps a mapping made by <see cref="Map"/>.</summary>
    internal static bool Unmap(nint address, ulong length) => munmap((void*)address, (nuint)length) == 0;
}
