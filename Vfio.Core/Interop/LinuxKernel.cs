// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>
/// The kernel port over Linux itself: thin, allocation-free libc calls (<c>LibraryImport</c>) for the ioctl,
/// pread/pwrite and mmap paths; EINTR is retried here, errno is captured on the very next line.
/// </summary>
/// <example>
/// <code>
/// IKernel kernel = LinuxKernel.Instance;
/// VfioException.ThrowIfFailed(kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container), "open", "/dev/vfio/vfio");
/// int version = VfioException.ThrowIfFailed(kernel.Ioctl(container, VfioUapi.VFIO_GET_API_VERSION, 0), "VFIO_GET_API_VERSION", "/dev/vfio/vfio");
/// </code>
/// </example>
public sealed class LinuxKernel : IKernel
{
    private LinuxKernel()
    {
    }

    /// <summary>The one instance.</summary>
    /// <exception cref="PlatformNotSupportedException">Not running on 64-bit Linux.</exception>
    public static LinuxKernel Instance
    {
        get
        {
            if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
            {
                throw new PlatformNotSupportedException("VFIO needs a 64-bit Linux process.");
            }
            return s_instance;
        }
    }

    private static readonly LinuxKernel s_instance = new();

    /// <inheritdoc/>
    public int Open(string path, OpenFlags flags, out SafeFileHandle handle)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        while (true)
        {
            handle = Libc.open(path, (int)flags | Libc.O_CLOEXEC, 0);
            if (!handle.IsInvalid)
            {
                return 0;
            }
            int errno = Libc.LastErrno;
            handle.Dispose();
            if (errno != (int)Errno.EINTR)
            {
                return -errno;
            }
        }
    }

    /// <inheritdoc/>
    public int Ioctl(SafeHandle fd, uint request, nint argument)
    {
        // One SafeHandle reference around the call (as the marshaller takes), errno read before it is released: a
        // release that closes the fd cannot overwrite it.
        ArgumentNullException.ThrowIfNull(fd);
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            int raw = (int)fd.DangerousGetHandle();
            int rc;
            do
            {
                rc = Libc.RawResult(Libc.ioctl_raw(raw, request, argument));
            }
            while (rc == -(int)Errno.EINTR);
            return rc;
        }
        finally
        {
            fd.DangerousRelease();
        }
    }

    /// <inheritdoc/>
    public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => Ioctl(fd, request, (nint)argument);

    /// <inheritdoc/>
    public unsafe int Ioctl(SafeHandle fd, uint request, Span<byte> argument)
    {
        fixed (byte* p = argument)
        {
            return Ioctl(fd, request, p);
        }
    }

    /// <inheritdoc/>
    public unsafe long PRead(SafeHandle fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            return Transfer(fd, p, buffer.Length, offset, write: false);
        }
    }

    /// <inheritdoc/>
    public unsafe long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            return Transfer(fd, p, buffer.Length, offset, write: true);
        }
    }

    // pread/pwrite with one SafeHandle reference around the call and errno read before it is released (see Ioctl).
    private static unsafe long Transfer(SafeHandle fd, byte* p, int length, long offset, bool write)
    {
        ArgumentNullException.ThrowIfNull(fd);
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            int raw = (int)fd.DangerousGetHandle();
            nint rc;
            do
            {
                rc = Libc.RawResult(write ? Libc.pwrite_raw(raw, p, (nuint)length, offset) : Libc.pread_raw(raw, p, (nuint)length, offset));
            }
            while (rc == -(int)Errno.EINTR);
            return rc;
        }
        finally
        {
            fd.DangerousRelease();
        }
    }

    /// <inheritdoc/>
    public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        // Create the owner first so the mapping is never unowned, even if the allocation fails afterwards.
        var owner = new LinuxMemoryMapping();
        nint address = Libc.mmap(0, (nuint)length, (int)protection, Libc.MAP_SHARED, fd, offset);
        if (address == Libc.MAP_FAILED)
        {
            int errno = Libc.LastErrno;
            owner.Dispose();
            mapping = null;
            return -errno;
        }
        owner.Attach(address, length, offset);
        mapping = owner;
        return 0;
    }

    /// <inheritdoc/>
    public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        Libc.CheckAlignment(alignment);
        var owner = new LinuxMemoryMapping();
        int rc = Libc.MapAligned((nuint)length, (nuint)alignment, (int)protection, Libc.MAP_SHARED, fd, offset, out nint address);
        if (rc < 0)
        {
            owner.Dispose();
            mapping = null;
            return rc;
        }
        owner.Attach(address, length, offset);
        mapping = owner;
        return 0;
    }

    /// <inheritdoc/>
    public int MapAnonymous(ulong length, out MemoryMapping? mapping)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        var owner = new LinuxMemoryMapping();
        int rc = Libc.MapAnonymous((nuint)length, out nint address);
        if (rc < 0)
        {
            owner.Dispose();
            mapping = null;
            return rc;
        }
        owner.Attach(address, length, 0);
        mapping = owner;
        return 0;
    }

    /// <inheritdoc/>
    public int LockMemory(MemoryMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        bool added = false;
        try
        {
            mapping.DangerousAddRef(ref added);
            nint address = mapping.DangerousGetHandle();
            int rc = Libc.Result(Libc.madvise(address, (nuint)mapping.Length, Libc.MADV_DONTFORK));
            return rc < 0 ? rc : Libc.Result(Libc.mlock(address, (nuint)mapping.Length));
        }
        finally
        {
            if (added)
            {
                mapping.DangerousRelease();
            }
        }
    }

    /// <inheritdoc/>
    public unsafe int GetStatus(SafeHandle fd, out FileStatus status)
    {
        Libc.statx_t stx;
        int rc = Libc.Result(Libc.statx(fd, string.Empty, Libc.AT_EMPTY_PATH, Libc.STATX_BASIC_STATS, &stx));
        status = rc < 0 ? default : ToStatus(in stx);
        return rc < 0 ? rc : 0;
    }

    /// <inheritdoc/>
    public unsafe int ReadLink(string path, out string target)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        const int Capacity = 4096;
        byte* buffer = stackalloc byte[Capacity];
        nint n = Libc.Result(Libc.readlink(path, buffer, Capacity));
        if (n < 0)
        {
            target = string.Empty;
            return (int)n;
        }
        target = Encoding.UTF8.GetString(buffer, (int)n);
        return 0;
    }

    /// <inheritdoc/>
    public unsafe int ReadText(string path, out string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        text = string.Empty;
        int rc = Open(path, OpenFlags.ReadOnly, out SafeFileHandle handle);
        using (handle)
        {
            if (rc < 0)
            {
                return rc;
            }
            // sysfs attributes are at most a page; read until EOF in case a file is larger.
            byte[] buffer = new byte[4096];
            int used = 0;
            while (true)
            {
                if (used == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }
                nint n;
                fixed (byte* p = &buffer[used])
                {
                    n = Libc.Result(Libc.read(handle, p, (nuint)(buffer.Length - used)));
                }
                if (n == -(int)Errno.EINTR)
                {
                    continue;
                }
                if (n < 0)
                {
                    return (int)n;
                }
                if (n == 0)
                {
                    break;
                }
                used += (int)n;
            }
            text = Encoding.UTF8.GetString(buffer, 0, used).TrimEnd('\n');
            return 0;
        }
    }

    /// <inheritdoc/>
    public unsafe int ListDirectory(string path, out string[] entries)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        entries = [];
        nint directory = Libc.opendir(path);
        if (directory == 0)
        {
            return -Libc.LastErrno;
        }
        try
        {
            var names = new List<string>();
            while (true)
            {
                byte* entry = Libc.readdir(directory);
                if (entry == null)
                {
                    int errno = Libc.LastErrno;
                    if (errno != 0)
                    {
                        return -errno;
                    }
                    break;
                }
                string name = Marshal.PtrToStringUTF8((nint)(entry + Libc.DirentNameOffset)) ?? string.Empty;
                if (name is not ("." or ".."))
                {
                    names.Add(name);
                }
            }
            names.Sort(StringComparer.Ordinal);
            entries = [.. names];
            return 0;
        }
        finally
        {
            _ = Libc.closedir(directory);
        }
    }

    /// <inheritdoc/>
    public unsafe bool Exists(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Libc.statx_t stx;
        return Libc.statx(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_TYPE, &stx) == 0;
    }

    internal static FileStatus ToStatus(in Libc.statx_t stx)
    {
        FileType type = (stx.stx_mode & Libc.S_IFMT) switch
        {
            Libc.S_IFREG => FileType.Regular,
            Libc.S_IFDIR => FileType.Directory,
            Libc.S_IFCHR => FileType.CharacterDevice,
            0x6000 => FileType.BlockDevice,
            Libc.S_IFIFO => FileType.Fifo,
            Libc.S_IFSOCK => FileType.Socket,
            0xA000 => FileType.SymbolicLink,
            0 => FileType.AnonymousInode,
            _ => FileType.Unknown,
        };
        return new FileStatus(type, stx.stx_rdev_major, stx.stx_rdev_minor, stx.stx_ino, stx.stx_dev_major, stx.stx_dev_minor);
    }

    /// <summary>A mapping made by <c>mmap</c>, released by <c>munmap</c> (also <see cref="DmaBuffer"/>'s memory).</summary>
    internal sealed class LinuxMemoryMapping : MemoryMapping
    {
        internal void Attach(nint address, ulong length, long fileOffset) => SetMapping(address, length, fileOffset);

        protected override bool ReleaseMapping() => Libc.munmap(handle, (nuint)Length) == 0;
    }
}
