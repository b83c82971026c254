// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// Real fd numbers for simulated files. Each open file is one end of a socketpair; the simulator keeps the other
/// end and watches it for hang-up, which happens exactly when the last reference to the user's end is closed —
/// across dup, fork/exec inheritance and SCM_RIGHTS, just like the kernel's file release. Files are looked up
/// by the inode of the user's end.
/// </summary>
internal sealed class FdTable : IDisposable
{
    private readonly int _epoll;
    private readonly Dictionary<long, Entry> _byInode = [];
    private readonly Dictionary<ulong, Entry> _byToken = [];
    private ulong _nextToken;

    private sealed record Entry(SimFile File, long Inode, int Peer, ulong Token);

    internal FdTable()
    {
        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll < 0)
        {
            throw new Vfio.Core.VfioException((Vfio.Core.Errno)Libc.LastErrno, "epoll_create1", "simulated kernel");
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
        int rc = Libc.SocketPair(out int user, out int peer);
        if (rc < 0)
        {
            return rc;
        }
        long inode = Libc.Inode(user);
        ulong token = ++_nextToken;
        if (inode < 0 || Libc.WatchHangUp(_epoll, peer, token) < 0)
        {
            _ = Libc.close(user);
            _ = Libc.close(peer);
            return inode < 0 ? (int)inode : -Libc.LastErrno;
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
        Span<ulong> tokens = stackalloc ulong[64];
        while (true)
        {
            int n = Libc.PollHangUps(_epoll, tokens);
            if (n <= 0)
            {
                return;
            }
            for (int i = 0; i < n; i++)
            {
                if (_byToken.Remove(tokens[i], out Entry? entry))
                {
                    _byInode.Remove(entry.Inode);
                    _ = Libc.close(entry.Peer);
                    entry.File.Release();
                }
            }
        }
    }

    public void Dispose()
    {
        foreach (Entry entry in _byToken.Values)
        {
            _ = Libc.close(entry.Peer);
        }
        _byToken.Clear();
        _byInode.Clear();
        _ = Libc.close(_epoll);
    }
}
