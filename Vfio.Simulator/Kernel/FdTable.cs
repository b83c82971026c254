// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// Real fd numbers for simulated files. Each open file is one end of a socketpair; the simulator keeps the other
/// end and watches it for hang-up, which happens exactly when the last reference to the user's end is closed —
/// across dup, fork/exec inheritance and SCM_RIGHTS, just like the kernel's file release. Files are looked up
/// by the inode of the user's end.
/// </summary>
internal sealed class FdTable : IDisposable
{
    private readonly SafeFileHandle _epoll;
    private readonly Dictionary<long, Entry> _byInode = [];
    private readonly Dictionary<ulong, Entry> _byToken = [];
    private ulong _nextToken;

    private sealed record Entry(SimFile File, long Inode, SafeFileHandle Peer, ulong Token);

    internal FdTable()
    {
        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll.IsInvalid)
        {
            var errno = (Errno)Libc.LastErrno;
            _epoll.Dispose();
            throw new VfioException(errno, "epoll_create1", "simulated kernel");
        }
    }

    /// <summary>The number of open simulated files.</summary>
    internal int Count => _byInode.Count;

    /// <summary>The open simulated files, for state queries.</summary>
    internal IEnumerable<SimFile> Files
    {
        get
        {
            foreach (Entry entry in _byInode.Values)
            {
                yield return entry.File;
            }
        }
    }

    /// <summary>Creates an fd for <paramref name="file"/> and returns its raw number, owned by the caller.</summary>
    internal int Install(SimFile file)
    {
        int rc = Libc.SocketPair(Libc.SOCK_SEQPACKET, out int user, out int peerFd);
        if (rc < 0)
        {
            return rc;
        }
#pragma warning disable CA2000 // The entry owns the peer from here on (closed on hang-up or dispose); failure closes it below.
        var peer = new SafeFileHandle(peerFd, ownsHandle: true);
#pragma warning restore CA2000
        long inode = Libc.Inode(user);
        ulong token = ++_nextToken;
        rc = inode < 0 ? (int)inode : Libc.EpollControl(_epoll, Libc.EPOLL_CTL_ADD, peer, Libc.EPOLLRDHUP | Libc.EPOLLHUP, token);
        if (rc < 0)
        {
            _ = Libc.close(user);
            peer.Dispose();
            return rc;
        }
        var entry = new Entry(file, inode, peer, token);
        _byInode[inode] = entry;
        _byToken[token] = entry;
        return user;
    }

    /// <summary>Creates an fd for <paramref name="file"/> as an owned handle.</summary>
    internal int Install(SimFile file, out SafeFileHandle handle)
    {
        int fd = Install(file);
        handle = new SafeFileHandle(fd < 0 ? -1 : fd, ownsHandle: true);
        return fd < 0 ? fd : 0;
    }

    /// <summary>The simulated file <paramref name="fd"/> refers to, or null for a real file (or a closed fd).</summary>
    internal SimFile? Resolve(SafeHandle fd) => fd.IsClosed || fd.IsInvalid ? null : Resolve((int)fd.DangerousGetHandle());

    /// <inheritdoc cref="Resolve(SafeHandle)"/>
    internal SimFile? Resolve(int fd)
    {
        long inode = Libc.Inode(fd);
        return inode >= 0 && _byInode.TryGetValue(inode, out Entry? entry) ? entry.File : null;
    }

    /// <summary>The inode of a simulated file (for fstat).</summary>
    internal long InodeOf(SimFile file)
    {
        foreach (Entry entry in _byInode.Values)
        {
            if (ReferenceEquals(entry.File, file))
            {
                return entry.Inode;
            }
        }
        return -1;
    }

    /// <summary>Runs <see cref="SimFile.Release"/> for every file whose last fd was closed since the last call.</summary>
    internal void DrainReleases()
    {
        Span<byte> events = stackalloc byte[Libc.EpollBufferSize(64)];
        while (true)
        {
            int n = Libc.EpollWait(_epoll, events, 0);
            if (n <= 0)
            {
                return;
            }
            for (int i = 0; i < n; i++)
            {
                if (_byToken.Remove(Libc.EpollEventData(events, i), out Entry? entry))
                {
                    _byInode.Remove(entry.Inode);
                    entry.Peer.Dispose();
                    entry.File.Release();
                }
            }
        }
    }

    public void Dispose()
    {
        foreach (Entry entry in _byToken.Values)
        {
            entry.Peer.Dispose();
        }
        _byToken.Clear();
        _byInode.Clear();
        _epoll.Dispose();
    }
}
