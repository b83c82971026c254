// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>
/// The kernel port: every system call the library makes on VFIO and iommufd objects, and the sysfs reads it
/// needs. <see cref="LinuxKernel"/> calls Linux; a kernel model (the simulator) can stand in for it, seeing the
/// same struct bytes the real kernel would.
/// </summary>
/// <remarks>
/// <para>
/// Results follow the Linux kernel's own convention: a call returns its non-negative result, or the negated errno
/// (<c>-EINVAL</c>) when it fails. Nothing returns <c>-1</c>; <c>EINTR</c> is retried below this interface where
/// the call is restartable. Callers turn failures into exceptions with
/// <see cref="VfioException.ThrowIfFailed(int, string, string?)"/>, naming the operation and the object, or branch
/// on a specific errno without an exception (EBUSY retry, iommufd's ENOENT on unmap).
/// </para>
/// <para>
/// Implementations must not allocate on <c>Ioctl</c>, <c>PRead</c> and <c>PWrite</c>: they sit on the map/unmap
/// and register-access paths. Every file descriptor is a <see cref="SafeHandle"/> from the moment it exists; fd 0
/// is a valid descriptor.
/// </para>
/// </remarks>
public interface IKernel
{
    /// <summary>Opens <paramref name="path"/> with <c>O_CLOEXEC</c> added to <paramref name="flags"/>.</summary>
    /// <param name="path">An absolute path, e.g. <c>/dev/vfio/vfio</c>.</param>
    /// <param name="flags">The access mode and flags.</param>
    /// <param name="handle">The new, owned handle; invalid when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int Open(string path, OpenFlags flags, out SafeFileHandle handle);

    /// <summary>Issues <paramref name="request"/> with an integer argument passed by value.</summary>
    /// <param name="fd">The file descriptor.</param>
    /// <param name="request">The request number (<c>_IO(';', nr)</c> for the running architecture, as <c>linux/vfio.h</c> and <c>linux/iommufd.h</c> define it).</param>
    /// <param name="argument">The value, e.g. the extension id of <c>VFIO_CHECK_EXTENSION</c>.</param>
    /// <returns>The ioctl's non-negative result, or <c>-errno</c>.</returns>
    int Ioctl(SafeHandle fd, uint request, nint argument);

    /// <summary>Issues <paramref name="request"/> with a pointer to a structure the kernel reads and writes.</summary>
    /// <param name="fd">The file descriptor.</param>
    /// <param name="request">The request number.</param>
    /// <param name="argument">The structure; it must stay fixed for the duration of the call.</param>
    /// <returns>The ioctl's non-negative result, or <c>-errno</c>.</returns>
    unsafe int Ioctl(SafeHandle fd, uint request, void* argument);

    /// <summary>Issues <paramref name="request"/> on a byte buffer: variable-size structures (capability chains,
    /// <c>SET_IRQS</c> data, bitmaps).</summary>
    /// <param name="fd">The file descriptor.</param>
    /// <param name="request">The request number.</param>
    /// <param name="argument">The structure's bytes, starting with its <c>argsz</c> or <c>size</c> field.</param>
    /// <returns>The ioctl's non-negative result, or <c>-errno</c>.</returns>
    int Ioctl(SafeHandle fd, uint request, Span<byte> argument);

    /// <summary>Reads from <paramref name="fd"/> at <paramref name="offset"/> (<c>pread</c>).</summary>
    /// <param name="fd">A device fd (VFIO region offsets are <c>index &lt;&lt; 40</c> plus the register offset on vfio-pci).</param>
    /// <param name="buffer">Where the bytes go.</param>
    /// <param name="offset">The file offset.</param>
    /// <returns>The number of bytes read, or <c>-errno</c>.</returns>
    long PRead(SafeHandle fd, Span<byte> buffer, long offset);

    /// <summary>Writes to <paramref name="fd"/> at <paramref name="offset"/> (<c>pwrite</c>).</summary>
    /// <param name="fd">A device fd.</param>
    /// <param name="buffer">The bytes to write.</param>
    /// <param name="offset">The file offset.</param>
    /// <returns>The number of bytes written, or <c>-errno</c>.</returns>
    long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset);

    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="offset"/>, shared.</summary>
    /// <param name="fd">A device fd.</param>
    /// <param name="offset">The file offset, page-aligned (a region's offset plus a sparse area's offset).</param>
    /// <param name="length">The length in bytes.</param>
    /// <param name="protection">Read, write or both.</param>
    /// <param name="mapping">The mapping, owned by the caller (disposing it unmaps); null when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping);

    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="offset"/>, shared, at a
    /// virtual address that is a multiple of <paramref name="alignment"/> (QEMU's placement of a large BAR, so the kernel
    /// can back it with huge page-table entries). The address space reserved to find the aligned place is released on
    /// success and on failure.</summary>
    /// <param name="fd">A device fd.</param>
    /// <param name="offset">The file offset, page-aligned.</param>
    /// <param name="length">The length in bytes.</param>
    /// <param name="protection">Read, write or both.</param>
    /// <param name="alignment">A power of two, at least the page size.</param>
    /// <param name="mapping">The mapping, owned by the caller (disposing it unmaps); null when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping);

    /// <summary>Maps <paramref name="length"/> bytes of private anonymous memory, readable and writable, zero-filled
    /// (<c>mmap(MAP_PRIVATE | MAP_ANONYMOUS)</c>): memory for DMA buffers that a device reaches by physical address
    /// (no-IOMMU mode, <see cref="PhysicalDmaBuffer"/>).</summary>
    /// <param name="length">The length in bytes, a multiple of the page size.</param>
    /// <param name="mapping">The mapping, owned by the caller (disposing it unmaps it, which also unlocks it); null when
    /// the call fails.</param>
    /// <returns>0, or <c>-errno</c> (e.g. <c>-ENOMEM</c>).</returns>
    int MapAnonymous(ulong length, out MemoryMapping? mapping);

    /// <summary>Keeps the pages of an anonymous mapping resident at the same physical frames, as far as user space can:
    /// <c>madvise(MADV_DONTFORK)</c> (after a fork the pages would be copy-on-write, and the next write would move them to
    /// a new frame) and then <c>mlock</c> (faults every page in and keeps it out of swap).</summary>
    /// <param name="mapping">A mapping made by <see cref="MapAnonymous"/>; the whole of it is locked.</param>
    /// <returns>0, or <c>-errno</c>: <c>-ENOMEM</c> when RLIMIT_MEMLOCK would be exceeded (without
    /// <c>CAP_IPC_LOCK</c>), <c>-EAGAIN</c> when some pages could not be locked, <c>-EPERM</c> when RLIMIT_MEMLOCK is 0.</returns>
    int LockMemory(MemoryMapping mapping);

    /// <summary>Returns the type, device number and inode of an open file (<c>fstat</c>/<c>statx</c>).</summary>
    /// <param name="fd">The file descriptor.</param>
    /// <param name="status">What was found.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int GetStatus(SafeHandle fd, out FileStatus status);

    /// <summary>Returns the target of the symbolic link <paramref name="path"/> (<c>readlink</c>), e.g. a sysfs
    /// <c>iommu_group</c> or <c>driver</c> link, or <c>/proc/self/fd/N</c>.</summary>
    /// <param name="path">The link.</param>
    /// <param name="target">The link's text, unresolved; empty when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int ReadLink(string path, out string target);

    /// <summary>Reads a small text file, e.g. a sysfs attribute such as <c>vendor</c>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="text">Its contents, with the trailing newline removed; empty when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int ReadText(string path, out string text);

    /// <summary>Lists the names in a directory, e.g. <c>/sys/kernel/iommu_groups/7/devices</c>.</summary>
    /// <param name="path">The directory.</param>
    /// <param name="entries">The entry names (not paths), sorted ordinally, without <c>.</c> and <c>..</c>; empty when the call fails.</param>
    /// <returns>0, or <c>-errno</c>.</returns>
    int ListDirectory(string path, out string[] entries);

    /// <summary>Whether <paramref name="path"/> exists (without following a final symbolic link).</summary>
    /// <param name="path">The path.</param>
    /// <returns>True when it exists.</returns>
    bool Exists(string path);
}
