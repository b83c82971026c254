// SPDX-License-Identifier: MIT
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>Something the poller reports readiness to.</summary>
internal interface IPollTarget
{
    /// <summary>Called on a poller thread when the armed fd became readable (or hung up).</summary>
    /// <param name="inline">True when this thread may run the waiter's continuation itself before it returns (another
    /// poller thread keeps polling meanwhile); false when it must hand the continuation to the thread pool.</param>
    void OnReady(bool inline);
}

/// <summary>
/// The epoll threads that serve every asynchronous wait of the process. Targets arm their fd edge-triggered
/// (<c>EPOLLIN | EPOLLET</c>: a value already pending is reported when armed, then each new signal) and keep it armed
/// across waits until they disarm it; they are called back on a poller thread; a private wake eventfd stops the threads.
/// </summary>
/// <remarks>
/// <para>
/// Two threads wait in <c>epoll_wait</c> on the same epoll fd (the kernel wakes one of them per ready event). The
/// thread that received an event may run the waiter's continuation itself, saving the hand-off to the thread pool
/// (a second thread wake-up on the interrupt's path), but only while at least one other poller thread is polling:
/// user code never holds up the delivery of interrupts. When no sibling is free, or for all but the last event of a
/// batch, the continuation goes to the thread pool.
/// </para>
/// <para>
/// epoll's user data carries a registration id, not an object reference: an event fetched by <c>epoll_wait</c>
/// for a target that was unregistered meanwhile finds no entry and is dropped, so a late event can never reach a
/// disposed target. Arming costs one <c>epoll_ctl</c>; nothing on the wait path allocates.
/// </para>
/// </remarks>
internal sealed class FdPoller : IDisposable
{
    private const int MaxEvents = 64;
    private const int Threads = 2;
    private const long WakeId = 0;

    private static readonly Lazy<FdPoller> s_shared = new(() => new FdPoller("Vfio.FdPoller"));

    private readonly SafeFileHandle _epoll;
    private readonly SafeFileHandle _wake;
    private readonly ConcurrentDictionary<long, IPollTarget> _targets = new();
    private readonly Thread[] _threads = new Thread[Threads];
    private long _nextId;
    // Poller threads not running a continuation; a thread may run one inline only if it is not the last of them.
    private int _polling = Threads;
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
            for (int i = 0; i < Threads; i++)
            {
                _threads[i] = new Thread(Run) { IsBackground = true, Name = threadName };
                _threads[i].Start();
            }
        }
        catch
        {
            Stop();
            _wake.Dispose();
            _epoll.Dispose();
            throw;
        }
    }

    /// <summary>The process's poller, started on first use; background threads that live as long as the process.</summary>
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

    /// <summary>Arms <paramref name="fd"/> edge-triggered until <see cref="Disarm"/>: a count already pending is reported
    /// at once, and then every later signal once (each eventfd write is an edge), without re-arming in between.</summary>
    internal void Arm(SafeHandle fd, long id) => Control(Libc.EPOLL_CTL_MOD, fd, Libc.EPOLLIN | Libc.EPOLLET, id);

    /// <summary>Stops reports for <paramref name="fd"/> (the state <see cref="Register"/> leaves it in); an event already
    /// fetched may still reach its target.</summary>
    internal void Disarm(SafeHandle fd, long id) => Control(Libc.EPOLL_CTL_MOD, fd, Libc.EPOLLONESHOT, id);

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
        // _stopping is checked before each wait: a continuation run inline here may have disposed this poller.
        while (!_stopping)
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
                if (!_targets.TryGetValue(id, out IPollTarget? target))
                {
                    continue;
                }
                // Only the batch's last event may run inline: the others must not wait behind user code.
                if (i == n - 1 && Interlocked.Decrement(ref _polling) > 0)
                {
                    try
                    {
                        target.OnReady(inline: true);
                    }
                    finally
                    {
                        Interlocked.Increment(ref _polling);
                    }
                }
                else
                {
                    if (i == n - 1)
                    {
                        Interlocked.Increment(ref _polling);
                    }
                    target.OnReady(inline: false);
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
        Stop();
        _targets.Clear();
        _wake.Dispose();
        _epoll.Dispose();
    }

    // Level-triggered and never read: every poller thread sees the wake event and returns.
    private void Stop()
    {
        _stopping = true;
        _ = Libc.EventFdWrite(_wake, 1);
        foreach (Thread? thread in _threads)
        {
            if (thread is not null && thread != Thread.CurrentThread && thread.ThreadState != ThreadState.Unstarted)
            {
                thread.Join();
            }
        }
    }
}
