// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// The kernel port over a model of Linux 6.12's VFIO and iommufd code: the library (or your driver) calls it exactly
/// as it calls <see cref="LinuxKernel"/>, with the same struct bytes, and gets the same results and errno values.
/// </summary>
/// <remarks>
/// <para>
/// The model owns <c>/dev/vfio/**</c>, <c>/dev/iommu</c>, <c>/sys/**</c>, <c>/proc/self/pagemap</c> (the machine's
/// physical memory, see <see cref="MapAnonymous"/>) and the process facts it enforces (<c>/proc/self/limits</c> and
/// <c>/proc/self/status</c>: RLIMIT_MEMLOCK and capabilities); every other path, and every fd that is not
/// one of its files (eventfds, memfds, sockets), goes to the real kernel. Its files are real fds (one end of a
/// socketpair), so dup, inheritance and SCM_RIGHTS work as for real files, and a file is released when its last
/// fd is closed, observed at the start of the next call.
/// </para>
/// <para>
/// Calls are serialised by one lock, like a kernel with a big lock: results are deterministic and a test can
/// reason about order.
/// </para>
/// </remarks>
public sealed partial class SimulatedKernel : IKernel, IDisposable
{
    private readonly Lock _lock = new();
    private readonly VirtualFileSystem _fs = new();
    private readonly FdTable _fds = new();
    private readonly IKernel _real = LinuxKernel.Instance;
    private bool _disposed;

    /// <summary>Creates an empty machine: no devices, no VFIO nodes. Topologies add them.</summary>
    public SimulatedKernel()
    {
        _fs.AddDirectory("/dev/vfio");
        _fs.AddDirectory("/sys/dev/char");
        _fs.AddDirectory("/sys/devices/virtual");
        _fs.AddDirectory("/sys/kernel/iommu_groups");
        _fs.AddDirectory("/sys/bus/pci/devices");
        _fs.AddDirectory("/sys/bus/platform/devices");
    }

    /// <summary>Deliberate failures: the n-th call of an ioctl returns a chosen errno.</summary>
    public FaultInjector Faults { get; } = new();

    /// <summary>When true, opening any simulated <c>/dev</c> node fails with <c>EACCES</c>: a worker without privileges
    /// that must receive its fds from a launcher.</summary>
    public bool DenyDeviceNodes { get; set; }

    /// <summary>
    /// The DMA state of the machine, for tests that prove teardown is exact: open simulated files, DMA mappings
    /// (Type1 mappings of every container plus mapped areas of every IOAS) and pinned pages charged to
    /// RLIMIT_MEMLOCK (the process's and, for iommufd's per-user mode, the user's counter). Files closed before the call are released first, as the kernel would have.
    /// </summary>
    /// <returns>The counts at this moment.</returns>
    public SimulatedKernelState GetState()
    {
        lock (_lock)
        {
            _fds.DrainReleases();
            int mappings = 0, objects = 0;
            foreach (SimFile file in _fds.Files)
            {
                switch (file)
                {
                    case ContainerFile { Driver: Type1Driver type1 }:
                        mappings += type1.MappingCount;
                        break;
                    case ContainerFile { Driver: SpaprTceDriver spapr }:
                        mappings += spapr.MappingCount;
                        break;
                    case IommuFdFile iommufd:
                        mappings += iommufd.AreaCount;
                        objects += iommufd.ObjectCount;
                        break;
                }
            }
            return new SimulatedKernelState(_fds.Count, mappings, objects, LockedVmPages + UserLockedVmPages);
        }
    }

    /// <summary>The number of simulated files that are open (fds not yet released).</summary>
    public int OpenFileCount
    {
        get
        {
            lock (_lock)
            {
                _fds.DrainReleases();
                return _fds.Count;
            }
        }
    }

    private static bool IsSimulatedPath(string path)
        => path.StartsWith("/sys/", StringComparison.Ordinal) || path == "/sys"
        || path.StartsWith("/dev/vfio/", StringComparison.Ordinal) || path == "/dev/vfio" || path == "/dev/iommu"
        || IsSimulatedProcPath(path);

    /// <inheritdoc/>
    public int Open(string path, OpenFlags flags, out SafeFileHandle handle)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path == PhysicalDmaBuffer.PagemapPath)
        {
            return OpenPagemap(out handle);
        }
        if (!IsSimulatedPath(path))
        {
            return _real.Open(path, flags, out handle);
        }
        lock (_lock)
        {
            Enter();
            handle = new SafeFileHandle(-1, ownsHandle: true);
            int rc = _fs.Lookup(path, followFinal: true, out VirtualFileSystem.Node? node);
            if (rc < 0)
            {
                return rc;
            }
            if (node is not VirtualFileSystem.DeviceNode device)
            {
                // Only device nodes are opened through the model; sysfs attributes are read with ReadText.
                return node is VirtualFileSystem.DirectoryNode ? -(int)Errno.EISDIR : -(int)Errno.EACCES;
            }
            if (DenyDeviceNodes)
            {
                return -(int)Errno.EACCES;
            }
            (int result, SimFile? file) = device.Open();
            if (result < 0 || file is null)
            {
                return result < 0 ? result : -(int)Errno.ENODEV;
            }
            handle.Dispose();
            rc = _fds.Install(file, out handle);
            if (rc < 0)
            {
                file.Release();
            }
            return rc;
        }
    }

    /// <inheritdoc/>
    public int Ioctl(SafeHandle fd, uint request, nint argument)
    {
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            if (file is null)
            {
                return _real.Ioctl(fd, request, argument);
            }
            int injected = Faults.Check(request);
            return injected < 0 ? injected : file.Ioctl(request, argument);
        }
    }

    /// <inheritdoc/>
    public long PRead(SafeHandle fd, Span<byte> buffer, long offset)
    {
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            return file is null ? _real.PRead(fd, buffer, offset) : file.Read(buffer, offset);
        }
    }

    /// <inheritdoc/>
    public long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset)
    {
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            return file is null ? _real.PWrite(fd, buffer, offset) : file.Write(buffer, offset);
        }
    }

    /// <inheritdoc/>
    public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
    {
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            return file is null ? _real.Map(fd, offset, length, protection, out mapping) : MapFile(file, fd, offset, length, protection, 0, out mapping);
        }
    }

    /// <inheritdoc/>
    public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        Libc.CheckAlignment(alignment);
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            return file is null
                ? _real.MapAligned(fd, offset, length, protection, alignment, out mapping)
                : MapFile(file, fd, offset, length, protection, alignment, out mapping);
        }
    }

    // A region mapping holds its device file open until it is unmapped, as a vma holds the file on Linux.
    private static int MapFile(SimFile file, SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        int rc = file.Map(offset, length, protection, alignment, out mapping);
        if (rc == 0 && mapping is EmulatedRegionMapping emulated && (rc = emulated.HoldFile(fd)) < 0)
        {
            mapping.Dispose();
            mapping = null;
        }
        return rc;
    }

    /// <inheritdoc/>
    public int GetStatus(SafeHandle fd, out FileStatus status)
    {
        lock (_lock)
        {
            Enter();
            SimFile? file = _fds.Resolve(fd);
            if (file is null)
            {
                return _real.GetStatus(fd, out status);
            }
            int rc = _real.GetStatus(fd, out FileStatus socket);
            (uint major, uint minor) = file.DeviceNumber;
            status = file.Type == FileType.CharacterDevice
                ? new FileStatus(FileType.CharacterDevice, major, minor, socket.Inode, 0, 6)
                : new FileStatus(FileType.AnonymousInode, 0, 0, socket.Inode, 0, 15);
            return rc;
        }
    }

    /// <inheritdoc/>
    public int ReadLink(string path, out string target)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        lock (_lock)
        {
            Enter();
            if (TryProcSelfFd(path, out SimFile? file))
            {
                target = file!.ProcLink;
                return 0;
            }
            if (!IsSimulatedPath(path))
            {
                return _real.ReadLink(path, out target);
            }
            target = string.Empty;
            int rc = _fs.Lookup(path, followFinal: false, out VirtualFileSystem.Node? node);
            if (rc < 0)
            {
                return rc;
            }
            if (node is not VirtualFileSystem.LinkNode link)
            {
                return -(int)Errno.EINVAL;
            }
            target = link.Target;
            return 0;
        }
    }

    /// <inheritdoc/>
    public int ReadText(string path, out string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsSimulatedPath(path))
        {
            return _real.ReadText(path, out text);
        }
        lock (_lock)
        {
            Enter();
            text = string.Empty;
            int rc = _fs.Lookup(path, followFinal: true, out VirtualFileSystem.Node? node);
            if (rc < 0)
            {
                return rc;
            }
            switch (node)
            {
                case VirtualFileSystem.TextNode attribute:
                    text = attribute.Read().TrimEnd('\n');
                    return 0;
                case VirtualFileSystem.DirectoryNode:
                    return -(int)Errno.EISDIR;
                default:
                    return -(int)Errno.EACCES;
            }
        }
    }

    /// <inheritdoc/>
    public int ListDirectory(string path, out string[] entries)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsSimulatedPath(path))
        {
            return _real.ListDirectory(path, out entries);
        }
        lock (_lock)
        {
            Enter();
            entries = [];
            int rc = _fs.Lookup(path, followFinal: true, out VirtualFileSystem.Node? node);
            if (rc < 0)
            {
                return rc;
            }
            if (node is not VirtualFileSystem.DirectoryNode directory)
            {
                return -(int)Errno.ENOTDIR;
            }
            entries = [.. directory.Children.Keys];
            return 0;
        }
    }

    /// <inheritdoc/>
    public bool Exists(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsSimulatedPath(path))
        {
            return _real.Exists(path);
        }
        lock (_lock)
        {
            Enter();
            return _fs.Lookup(path, followFinal: false, out _) == 0;
        }
    }

    private bool TryProcSelfFd(string path, out SimFile? file)
    {
        file = null;
        const string Prefix = "/proc/self/fd/";
        return path.StartsWith(Prefix, StringComparison.Ordinal)
            && int.TryParse(path.AsSpan(Prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int fd)
            && (file = _fds.Resolve(fd)) is not null;
    }

    /// <summary>Every call starts here: refuse use after dispose, then run the releases of files closed since.</summary>
    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _fds.DrainReleases();
    }

    /// <summary>Releases the model's placeholder fds. Fds handed to callers stay open until they close them.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            _fds.Dispose();
        }
    }
}
