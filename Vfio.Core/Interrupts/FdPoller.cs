// SPDX-License-Identifier: MIT
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>Something the poller reports readiness to.</summary>
internal interface IPollTarget
{
    /// <summary>Called on the poller thread when the armed fd became readable (or hung up).</summary>
    void OnReady();
}

/// <summary>
/// One epoll thread that serves every asynchronous wait of the process. Targets arm their fd one-shot
/// (<c>EPOLLIN | EPOLLONESHOT</c>, level-triggered, so a value already pending fires at once) and are called back on
/// the poller thread; a private wake eventfd stops the thread.
/// </summary>
/// <remarks>
/// epoll's user data carries a registration id, not an object reference: an event fetched by <c>epoll_wait</c>
/// for a target that was unregistered meanwhile finds no entry and is dropped, so a late event can never reach a
/// disposed target. Arming costs one <c>epoll_ctl</c>; nothing on the wait path allocates.
/// </remarks>
internal sealed class FdPoller : IDisposable
{
    private const int MaxEvents = 64;
    private const long WakeId = 0;

    private static readonly Lazy<FdPoller> s_shared = new(() => new FdPoller("Vfio.FdPoller"));

    private readonly SafeFileHandle _epoll;
    private readonly SafeFileHandle _wake;
    private readonly ConcurrentDictionary<long, IPollTarget> _targets = new();
    private readonly Thread _thread;
    private long _nextId;
    private volatile bool _stopping;

    internal FdPoller(string threadName)
    {
        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll.IsInvalid)
        {
            int errno = Libc.LastErrno;
            _epoll.Dispose();
            throw new VfioException((Errno)errno, "epoll_create1", threadName);
        }
        _wake = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_wake.IsInvalid)
        {
            int errno = Libc.LastErrno;
            _wake.Dispose();
            _epoll.Dispose();
            throw new VfioException((Errno)errno, "eventfd", threadName);
        }
        try
        {
            Control(Libc.EPOLL_CTL_ADD, _wake, Libc.EPOLLIN, WakeId);
            _thread = new Thread(Run) { IsBackground = true, Name = threadName };
            _thread.Start();
        }
        catch
        {
            _wake.Dispose();
            _epoll.Dispose();
            throw;
        }
    }

    /// <summary>The process's poller, started on first use; a background thread that lives as long as the process.</summary>
    internal static FdPoller Shared => s_shared.Value;

    /// <summary>Adds <paramref name="fd"/> disarmed and returns its registration id.</summary>
    internal long Register(SafeHandle fd, IPollTarget target)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        long id = Interlocked.Increment(ref _nextId);
        _targets[id] = target;
        try
        {
            // Added one-shot with no events: disarmed until Arm.
            Control(Libc.EPOLL_CTL_ADD, fd, Libc.EPOLLONESHOT, id);
        }
        catch
        {
            _targets.TryRemove(id, out _);
            throw;
        }
        return id;
    }

    /// <summary>Arms <paramref name="fd"/> for one readiness report.</summary>
    internal void Arm(SafeHandle fd, long id) => Control(Libc.EPOLL_CTL_MOD, fd, Libc.EPOLLIN | Libc.EPOLLONESHOT, id);

    /// <summary>Removes the registration; no callback for it runs after this returns except one already running.</summary>
    internal void Unregister(SafeHandle fd, long id)
    {
        _targets.TryRemove(id, out _);
        if (!fd.IsClosed && !_stopping)
        {
            _ = Libc.EpollControl(_epoll, Libc.EPOLL_CTL_DEL, fd, 0, 0);
        }
    }

    private void Control(int operation, SafeHandle fd, uint events, long id)
    {
        int rc = Libc.EpollControl(_epoll, operation, fd, events, (ulong)id);
        if (rc < 0)
        {
            VfioException.Throw(rc, "epoll_ctl", "interrupt poller");
        }
    }

    private void Run()
    {
        Span<byte> events = stackalloc byte[Libc.EpollBufferSize(MaxEvents)];
        while (true)
        {
            int n = Libc.EpollWait(_epoll, events, -1);
            if (n < 0)
            {
                if (n == -(int)Errno.EINTR)
                {
                    continue;
                }
                // epoll_wait fails only on a programming error (EBADF/EINVAL); nothing can be served any more.
                Environment.FailFast($"epoll_wait failed in the VFIO interrupt poller: errno {-n}");
            }
            for (int i = 0; i < n; i++)
            {
                long id = (long)Libc.EpollEventData(events, i);
                if (id == WakeId)
                {
                    if (_stopping)
                    {
                        return;
                    }
                    continue;
                }
                if (_targets.TryGetValue(id, out IPollTarget? target))
                {
                    target.OnReady();
                }
            }
        }
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }
        _stopping = true;
        _ = Libc.EventFdWrite(_wake, 1);
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
        _targets.Clear();
        _wake.Dispose();
        _epoll.Dispose();
    }
}
