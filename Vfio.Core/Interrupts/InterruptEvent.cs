// SPDX-License-Identifier: MIT
using System.Threading.Tasks.Sources;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>
/// An eventfd that a device interrupt (or anything else) signals: hand <see cref="Handle"/> to
/// <c>VFIO_DEVICE_SET_IRQS</c> (or to KVM as an irqfd), then wait for it synchronously or asynchronously.
/// </summary>
/// <remarks>
/// <para>
/// The eventfd counts signals; a wait returns the count accumulated since the previous wait (at least 1) and
/// resets it, so no interrupt is lost and none is reported twice. One wait (synchronous or asynchronous) at a time.
/// </para>
/// <para>
/// Asynchronous waits are served by one epoll thread for the whole process. In the steady state neither kind of
/// wait allocates: an asynchronous wait completes a <see cref="ValueTask{TResult}"/> backed by this object.
/// Disposing the event during a wait ends the wait with <see cref="ObjectDisposedException"/>; cancelling its
/// token ends an asynchronous wait with <see cref="OperationCanceledException"/> and leaves pending signals for
/// the next wait.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var msi = new InterruptEvent();
/// device.SetIrqEventFds(VfioPciIrq.Msi, [msi]);   // the device layer's call
/// ulong count = await msi.WaitAsync(cancellationToken);
/// </code>
/// </example>
public sealed class InterruptEvent : IDisposable, IValueTaskSource<ulong>, IPollTarget
{
    private readonly SafeFileHandle _fd;
    private readonly FdPoller _poller;
    private readonly Lock _gate = new();
    private ManualResetValueTaskSourceCore<ulong> _source = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _cancellation;
    private CancellationToken _cancellationToken;
    private long _registration;
    private bool _pending;
    private bool _syncWaiting;
    // Under the gate: the fd is armed edge-triggered in the poller (kept armed across asynchronous waits that block).
    private bool _armed;
    // Which end an asynchronous wait starts at: read the count first (it was pending at the previous wait, or the poller
    // saw a signal arrive with no wait pending) or go straight to the poller (the previous wait had to wait).
    private bool _asyncReadFirst = true;
    // The same for synchronous waits (read, else poll; or poll, then read), with a read-first probe every ProbeEvery waits
    // while polling first, because poll cannot tell whether it blocked. Only the one synchronous waiter touches them.
    private bool _syncReadFirst = true;
    private uint _syncWaits;
    private const uint ProbeEvery = 16;
    private volatile bool _disposed;
    // The device whose interrupts the event receives (wired with SetIrqEventFds) and, once that device was detached with
    // the event still wired, the device's name: a wait then ends with ObjectDisposedException instead of waiting for an
    // interrupt that can no longer come.
    private object? _wiredTo;
    private volatile string? _detachedFrom;

    /// <summary>The tags of <c>vfio.interrupt.count</c> (device, IRQ index), set when the event is wired to a device.</summary>
    internal KeyValuePair<string, object?>[]? TelemetryTags;

    /// <summary>Creates an eventfd (<c>EFD_CLOEXEC | EFD_NONBLOCK</c>) with a count of 0.</summary>
    /// <exception cref="VfioException">The kernel refused to create it (e.g. too many open files).</exception>
    public InterruptEvent()
        : this(FdPoller.Shared)
    {
    }

    /// <summary>
    /// Wraps an existing eventfd, e.g. one received from a management layer or shared with a VMM. The fd is
    /// switched to non-blocking mode, which affects every fd sharing its open file description.
    /// </summary>
    /// <param name="eventFd">The eventfd.</param>
    /// <param name="ownsHandle">True to close <paramref name="eventFd"/> when this object is disposed; false to leave
    /// it to the caller, who must keep it open for this object's lifetime.</param>
    /// <exception cref="ArgumentException"><paramref name="eventFd"/> is closed, invalid or not an eventfd.</exception>
    public InterruptEvent(SafeFileHandle eventFd, bool ownsHandle)
    {
        ArgumentNullException.ThrowIfNull(eventFd);
        if (eventFd.IsInvalid || eventFd.IsClosed)
        {
            throw new ArgumentException("The eventfd handle is closed or invalid.", nameof(eventFd));
        }
        int fd = (int)eventFd.DangerousGetHandle();
        if (LinuxKernel.Instance.ReadLink($"/proc/self/fd/{fd}", out string target) < 0 || target != "anon_inode:[eventfd]")
        {
            throw new ArgumentException($"fd {fd} is not an eventfd ({target}).", nameof(eventFd));
        }
        int flags = Libc.fcntl(eventFd, Libc.F_GETFL, 0);
        if (flags < 0 || Libc.fcntl(eventFd, Libc.F_SETFL, flags | Libc.O_NONBLOCK) < 0)
        {
            throw new VfioException((Errno)Libc.LastErrno, "fcntl(F_SETFL, O_NONBLOCK)", $"eventfd {fd}");
        }
        _poller = FdPoller.Shared;
        _fd = ownsHandle ? eventFd : new SafeFileHandle(fd, ownsHandle: false);
    }

    internal InterruptEvent(FdPoller poller)
    {
        _poller = poller;
        _fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_fd.IsInvalid)
        {
            int errno = Libc.LastErrno;
            _fd.Dispose();
            throw new VfioException((Errno)errno, "eventfd", "interrupt event");
        }
    }

    /// <summary>The eventfd, for <c>VFIO_DEVICE_SET_IRQS</c> or an irqfd. It stays owned by this object.</summary>
    public SafeFileHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _fd;
        }
    }

    /// <summary>Adds <paramref name="count"/> to the event's counter, waking a waiter (what a device interrupt does).</summary>
    /// <param name="count">How much to add; at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is 0 or <c>ulong.MaxValue</c>.</exception>
    /// <exception cref="VfioException">The counter would overflow.</exception>
    public void Signal(ulong count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfZero(count);
        ArgumentOutOfRangeException.ThrowIfEqual(count, ulong.MaxValue);
        ObjectDisposedException.ThrowIf(_disposed, this);
        VfioException.ThrowIfFailed(Libc.EventFdWrite(_fd, count), "write", "interrupt eventfd");
    }

    /// <summary>Takes the pending count without waiting.</summary>
    /// <param name="count">The count since the previous wait; 0 when none is pending.</param>
    /// <returns>True when the event had been signalled.</returns>
    public bool TryWait(out ulong count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return TryRead(out count);
    }

    /// <summary>Blocks until the event is signalled and returns the count since the previous wait.</summary>
    /// <returns>The count, at least 1.</returns>
    /// <exception cref="ObjectDisposedException">The event is, or was during the wait, disposed.</exception>
    public ulong Wait()
    {
        TryWait(Timeout.InfiniteTimeSpan, out ulong count);
        return count;
    }

    /// <summary>Blocks until the event is signalled or <paramref name="timeout"/> passes.</summary>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="count">The count since the previous wait, or 0 on timeout.</param>
    /// <returns>True when the event was signalled; false on timeout.</returns>
    /// <exception cref="ObjectDisposedException">The event is, or was during the wait, disposed.</exception>
    /// <exception cref="InvalidOperationException">Another wait is in progress.</exception>
    public bool TryWait(TimeSpan timeout, out ulong count)
    {
        long totalMs = (long)timeout.TotalMilliseconds;
        ArgumentOutOfRangeException.ThrowIfLessThan(totalMs, -1, nameof(timeout));
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Read first when the previous wait found its count pending (one syscall instead of C's poll + read), on a
        // probe, and for a zero timeout; otherwise poll first, as C does (poll + read instead of read + poll + read).
        bool readFirst = _syncReadFirst || totalMs == 0 || ++_syncWaits % ProbeEvery == 0;
        count = 0;
        if (readFirst && TryRead(out count))
        {
            _syncReadFirst = true;
            return true;
        }
        lock (_gate)
        {
            // A detached event still hands out what is pending (the read above was skipped when polling first).
            if (_detachedFrom is not null && !readFirst && TryRead(out count))
            {
                return true;
            }
            ThrowIfDetached();
            if (_pending || _syncWaiting)
            {
                throw new InvalidOperationException("Another wait on this interrupt event is in progress.");
            }
            _syncWaiting = true;
        }
        if (readFirst)
        {
            _syncReadFirst = false;
        }
        try
        {
            // Poll, then read (one read per wake-up). The first poll runs even when it is the only one (a poll-first
            // wait with a short timeout): the count may be pending.
            long deadline = totalMs < 0 ? long.MaxValue : Environment.TickCount64 + totalMs;
            bool looked = readFirst;
            while (true)
            {
                long remaining = totalMs < 0 ? -1 : Math.Max(0, deadline - Environment.TickCount64);
                if (remaining == 0 && looked)
                {
                    return false;
                }
                looked = true;
                // PollOne keeps the fd number valid while blocked, even if Dispose runs meanwhile.
                int rc = Libc.PollOne(_fd, Libc.POLLIN, (int)Math.Min(remaining, int.MaxValue));
                if (rc < 0 && rc != -(int)Errno.EINTR)
                {
                    VfioException.Throw(rc, "poll", "interrupt eventfd");
                }
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_detachedFrom is not null)
                {
                    // Woken by the detach's wake-up write: take it back, then fail the wait.
                    _ = TryRead(out _);
                    ThrowIfDetached();
                }
                if (rc > 0 && TryRead(out count))
                {
                    return true;
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                _syncWaiting = false;
            }
        }
    }

    /// <summary>Waits asynchronously until the event is signalled and returns the count since the previous wait.</summary>
    /// <param name="cancellationToken">Ends the wait with <see cref="OperationCanceledException"/>; pending signals stay for the next wait.</param>
    /// <returns>The count, at least 1.</returns>
    /// <exception cref="ObjectDisposedException">The event is, or was during the wait, disposed.</exception>
    /// <exception cref="InvalidOperationException">Another wait is in progress.</exception>
    public ValueTask<ulong> WaitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ulong>(cancellationToken);
        }
        // Read first when the previous wait found its count pending; otherwise go straight to the poller: the fd is
        // then usually still armed from the previous wait, so this wait costs no syscall at all.
        bool readFirst = _asyncReadFirst;
        if (readFirst && TryRead(out ulong count))
        {
            return new ValueTask<ulong>(count);
        }
        short version;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_detachedFrom is not null && !readFirst && TryRead(out count))
            {
                return new ValueTask<ulong>(count);
            }
            ThrowIfDetached();
            if (_pending || _syncWaiting)
            {
                throw new InvalidOperationException("Another wait on this interrupt event is in progress.");
            }
            if (_registration == 0)
            {
                _registration = _poller.Register(_fd, this);
            }
            if (!_armed)
            {
                // Edge-triggered: a count pending now (e.g. one the skipped read would have found) is reported at once.
                // While armed, every count that arrived since the poller's last read has a report queued or in flight
                // (a report that finds no wait pending disarms, see OnReady), so an armed fd needs nothing here.
                _poller.Arm(_fd, _registration);
                _armed = true;
            }
            _asyncReadFirst = false;
            _source.Reset();
            version = _source.Version;
            _pending = true;
            _cancellationToken = cancellationToken;
            // Inside the gate (which is reentrant) so a stale one-shot report cannot complete this wait before the
            // registration is recorded; an already-cancelled token runs Cancel right here.
            _cancellation = cancellationToken.CanBeCanceled
                ? cancellationToken.UnsafeRegister(static state => ((InterruptEvent)state!).Cancel(), this)
                : default;
        }
        return new ValueTask<ulong>(this, version);
    }

    /// <summary>Whether the next synchronous wait reads before it polls (tests).</summary>
    internal bool SyncReadsFirst => _syncReadFirst;

    /// <summary>Whether the next asynchronous wait reads before it goes to the poller, and whether the fd is armed in
    /// the poller (tests).</summary>
    internal (bool ReadsFirst, bool Armed) AsyncState
    {
        get
        {
            lock (_gate)
            {
                return (_asyncReadFirst, _armed);
            }
        }
    }

    /// <summary>True while an asynchronous wait is registered and not completed (tests).</summary>
    internal bool AsyncWaitPending
    {
        get
        {
            lock (_gate)
            {
                return _pending;
            }
        }
    }

    void IPollTarget.OnReady(bool inline)
    {
        ulong count;
        lock (_gate)
        {
            if (!_pending)
            {
                // A signal with no wait pending (cancelled, or the next wait has not started yet): leave the count for
                // the next wait, which reads it first, and stop the reports until a wait has to wait again.
                _asyncReadFirst = true;
                if (_armed && !_disposed)
                {
                    _armed = false;
                    _poller.Disarm(_fd, _registration);
                }
                return;
            }
            if (!TryRead(out count))
            {
                // Someone else took it (TryWait): the fd stays armed, the next signal is reported.
                return;
            }
            _pending = false;
            _cancellation.Unregister();
            _source.RunContinuationsAsynchronously = !inline;
            if (!inline)
            {
                _source.SetResult(count);
                return;
            }
        }
        // Inline: the poller lets this thread run the waiter's continuation because another poller thread keeps
        // polling meanwhile (FdPoller). Outside the gate, so the continuation can start the next wait.
        _source.SetResult(count);
    }

    private void Cancel()
    {
        lock (_gate)
        {
            if (!_pending)
            {
                return;
            }
            _pending = false;
            _source.RunContinuationsAsynchronously = true;
            _source.SetException(new OperationCanceledException(_cancellationToken));
        }
    }

    private bool TryRead(out ulong count)
    {
        int rc = Libc.EventFdRead(_fd, out count);
        if (rc == sizeof(ulong))
        {
            VfioTelemetry.RecordInterrupts(count, TelemetryTags);
            return true;
        }
        if (rc == -(int)Errno.EAGAIN)
        {
            return false;
        }
        if (rc == -(int)Errno.EBADF && _disposed)
        {
            throw new ObjectDisposedException(nameof(InterruptEvent));
        }
        VfioException.Throw(rc, "read", "interrupt eventfd");
        return false;
    }

    internal bool IsDisposed => _disposed;

    /// <summary>Records that a device's interrupts now reach this event (the device layer's SET_IRQS); clears a
    /// previous device's detach.</summary>
    internal void WireTo(object device)
    {
        lock (_gate)
        {
            _wiredTo = device;
            _detachedFrom = null;
        }
    }

    /// <summary>The device the event is wired to was detached: a wait in progress, and every later wait that finds no
    /// count pending, ends with <see cref="ObjectDisposedException"/> naming the device, until the event is wired
    /// again. Does nothing when the event was wired to another device since.</summary>
    internal void OnDeviceDetached(object device, string deviceName)
    {
        lock (_gate)
        {
            if (_disposed || !ReferenceEquals(_wiredTo, device))
            {
                return;
            }
            _wiredTo = null;
            _detachedFrom = deviceName;
            if (_pending)
            {
                _pending = false;
                _cancellation.Unregister();
                _source.RunContinuationsAsynchronously = true;
                _source.SetException(Detached(deviceName));
            }
            if (_syncWaiting)
            {
                // Wake the blocked poll; it sees the detach and throws.
                _ = Libc.EventFdWrite(_fd, 1);
            }
        }
    }

    private void ThrowIfDetached()
    {
        if (_detachedFrom is string device)
        {
            throw Detached(device);
        }
    }

    private static ObjectDisposedException Detached(string device)
        => new(device, $"{device} was detached while this interrupt event was wired to it, so no interrupt can reach the event any more; attach the device again and wire the event to it before waiting.");

    /// <summary>Closes the eventfd. A wait in progress ends with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            if (_pending)
            {
                _pending = false;
                _cancellation.Unregister();
                _source.RunContinuationsAsynchronously = true;
                _source.SetException(new ObjectDisposedException(nameof(InterruptEvent)));
            }
            if (_syncWaiting)
            {
                // Wake the blocked poll; it sees _disposed and throws.
                _ = Libc.EventFdWrite(_fd, 1);
            }
        }
        if (_registration != 0)
        {
            _poller.Unregister(_fd, _registration);
        }
        _fd.Dispose();
    }

    ulong IValueTaskSource<ulong>.GetResult(short token) => _source.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ulong>.GetStatus(short token) => _source.GetStatus(token);

    void IValueTaskSource<ulong>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _source.OnCompleted(continuation, state, token, flags);
}
