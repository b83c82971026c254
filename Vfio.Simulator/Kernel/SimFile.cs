// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// An open file of the simulated kernel (the model's <c>struct file</c>): what an fd refers to. Every fd that
/// refers to the same open file description (dup, inheritance, SCM_RIGHTS) reaches the same object, and
/// <see cref="Release"/> runs once, when the last of them is closed — as the kernel's <c>release</c> does.
/// </summary>
internal abstract class SimFile
{
    /// <summary>What <c>fstat</c> shows: a character device (with its number) or an anonymous inode.</summary>
    internal abstract FileType Type { get; }

    /// <summary>The character device number, for <see cref="FileType.CharacterDevice"/>.</summary>
    internal virtual (uint Major, uint Minor) DeviceNumber => (0, 0);

    /// <summary>What <c>readlink /proc/self/fd/N</c> shows, e.g. <c>/dev/vfio/7</c> or <c>anon_inode:[vfio-device]</c>.</summary>
    internal abstract string ProcLink { get; }

    /// <summary>Handles an ioctl; <paramref name="argument"/> is the raw third argument (a value or a user pointer).
    /// Returns the result or <c>-errno</c>. Unknown requests: <c>-ENOTTY</c> unless the file's kernel code says otherwise.</summary>
    internal virtual int Ioctl(uint request, nint argument) => -(int)Errno.ENOTTY;

    /// <summary><c>pread</c>; files without a read operation return <c>-EINVAL</c>.</summary>
    internal virtual long Read(Span<byte> buffer, long offset) => -(int)Errno.EINVAL;

    /// <summary><c>pwrite</c>; files without a write operation return <c>-EINVAL</c>.</summary>
    internal virtual long Write(ReadOnlySpan<byte> buffer, long offset) => -(int)Errno.EINVAL;

    /// <summary><c>mmap</c> at an address that is a multiple of <paramref name="alignment"/> (0: where the kernel
    /// chooses); files without an mmap operation return <c>-ENODEV</c>.</summary>
    internal virtual int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        mapping = null;
        return -(int)Errno.ENODEV;
    }

    /// <summary>The last reference was closed.</summary>
    internal virtual void Release()
    {
    }
}
