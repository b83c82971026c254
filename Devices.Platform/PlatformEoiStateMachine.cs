// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Platform;

/// <summary>The state of one IRQ in a <see cref="PlatformEoiStateMachine"/>.</summary>
public enum PlatformIrqState
{
    /// <summary>Not signalled, or completed by an end of interrupt.</summary>
    Inactive,

    /// <summary>Signalled while another IRQ was active or pending: waits in the FIFO for its turn.</summary>
    Pending,

    /// <summary>Injected into the emulated interrupt controller; the next region access ends it.</summary>
    Active,
}

/// <summary>What a <see cref="PlatformEoiStateMachine"/> asks of its host: the emulated interrupt controller's lines,
/// the physical unmask and the region mappings.</summary>
/// <remarks>The machine calls these under its lock, in the order of its transitions; an implementation must not call
/// back into the machine.</remarks>
public interface IPlatformEoiHost
{
    /// <summary>An IRQ became active: raise its line on the emulated interrupt controller.</summary>
    /// <param name="irq">The IRQ index.</param>
    void Inject(int irq);

    /// <summary>The active IRQ ended (end of interrupt): lower its line and, for an automasked (level) IRQ, unmask the
    /// physical line.</summary>
    /// <param name="irq">The IRQ index.</param>
    void Complete(int irq);

    /// <summary>Switches between the fast path (regions mapped, accesses not seen) and the slow path (every region
    /// access goes through the host so the end of interrupt can be detected).</summary>
    /// <param name="enabled">True for the fast path.</param>
    void SetFastPath(bool enabled);
}

/// <summary>
/// The end-of-interrupt state machine of a host that emulates an interrupt controller for a platform device whose
/// level IRQs the kernel automasks: one IRQ is active at a time, others signalled meanwhile wait in a FIFO, the next
/// region access is taken as the end of the active IRQ (the driver clearing the device's interrupt status), and the
/// regions leave the fast path while an IRQ is active and return to it after a quiet period with none.
/// </summary>
/// <remarks>
/// Pure logic: the interrupts and region accesses are inputs, the <see cref="IPlatformEoiHost"/> calls are the outputs,
/// and the quiet period runs on a <see cref="TimeProvider"/> so tests control time. Thread-safe; allocation-free after
/// construction.
/// </remarks>
public sealed class PlatformEoiStateMachine : IDisposable
{
    /// <summary>The default quiet period before the fast path returns (1.1 s, as the reference host uses).</summary>
    public static readonly TimeSpan DefaultQuietPeriod = TimeSpan.FromMilliseconds(1100);

    private readonly Lock _lock = new();
    private readonly IPlatformEoiHost _host;
    private readonly PlatformIrqState[] _states;
    private readonly int[] _fifo;
    private readonly ITimer? _timer;
    private readonly TimeSpan _quietPeriod;
    private int _fifoHead;
    private int _fifoCount;
    private int _active = -1;
    private bool _fastPath = true;
    private bool _disposed;

    /// <summary>Creates the machine with every IRQ inactive and the fast path on.</summary>
    /// <param name="irqCount">The number of IRQs (at least 1).</param>
    /// <param name="host">The host the transitions drive.</param>
    /// <param name="timeProvider">The clock of the quiet period.</param>
    /// <param name="quietPeriod">How long after an IRQ became active the machine checks whether the fast path can
    /// return (again after each check that finds an IRQ active); <see cref="TimeSpan.Zero"/> keeps the slow path once
    /// entered.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="irqCount"/> is less than 1 or
    /// <paramref name="quietPeriod"/> is negative.</exception>
    public PlatformEoiStateMachine(int irqCount, IPlatformEoiHost host, TimeProvider timeProvider, TimeSpan quietPeriod)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(irqCount, 1);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentOutOfRangeException.ThrowIfLessThan(quietPeriod, TimeSpan.Zero);
        _host = host;
        _states = new PlatformIrqState[irqCount];
        _fifo = new int[irqCount];
        _quietPeriod = quietPeriod;
        if (quietPeriod > TimeSpan.Zero)
        {
            _timer = timeProvider.CreateTimer(static state => ((PlatformEoiStateMachine)state!).QuietPeriodElapsed(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The number of IRQs.</summary>
    public int IrqCount => _states.Length;

    /// <summary>The active IRQ, or −1 when none is.</summary>
    public int ActiveIrq
    {
        get
        {
            lock (_lock)
            {
                return _active;
            }
        }
    }

    /// <summary>The number of IRQs waiting in the FIFO.</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _fifoCount;
            }
        }
    }

    /// <summary>Whether the regions are on the fast path.</summary>
    public bool IsFastPath
    {
        get
        {
            lock (_lock)
            {
                return _fastPath;
            }
        }
    }

    /// <summary>Returns the state of <paramref name="irq"/>.</summary>
    /// <param name="irq">The IRQ index.</param>
    /// <returns>Its state.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="irq"/> is not an IRQ of the machine.</exception>
    public PlatformIrqState GetState(int irq)
    {
        CheckIrq(irq);
        lock (_lock)
        {
            return _states[irq];
        }
    }

    /// <summary>
    /// The trigger eventfd of <paramref name="irq"/> fired. An inactive IRQ becomes active (injected; the slow path
    /// starts and the quiet period is armed) when no IRQ is active or pending, and pending (queued) otherwise. A signal
    /// for an IRQ that is already active or pending is absorbed: the kernel automasks a level IRQ until its end of
    /// interrupt, and an edge IRQ signalled twice before it is handled is handled once.
    /// </summary>
    /// <param name="irq">The IRQ index.</param>
    /// <returns>The IRQ's state afterwards.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="irq"/> is not an IRQ of the machine.</exception>
    /// <exception cref="ObjectDisposedException">The machine is disposed.</exception>
    public PlatformIrqState Interrupt(int irq)
    {
        CheckIrq(irq);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_states[irq] != PlatformIrqState.Inactive)
            {
                return _states[irq];
            }
            if (_active >= 0 || _fifoCount > 0)
            {
                _states[irq] = PlatformIrqState.Pending;
                _fifo[(_fifoHead + _fifoCount) % _fifo.Length] = irq;
                _fifoCount++;
                return PlatformIrqState.Pending;
            }
            Activate(irq);
            if (_fastPath)
            {
                _fastPath = false;
                _host.SetFastPath(false);
            }
            _timer?.Change(_quietPeriod, Timeout.InfiniteTimeSpan);
            return PlatformIrqState.Active;
        }
    }

    /// <summary>
    /// A region of the device was accessed: the end of interrupt of the active IRQ, if any (it becomes inactive and
    /// the host completes it), after which the first pending IRQ, if any, becomes active and is injected. The slow
    /// path stays on; the quiet period decides when it ends.
    /// </summary>
    /// <returns>The IRQ that ended, or −1 when none was active.</returns>
    /// <exception cref="ObjectDisposedException">The machine is disposed.</exception>
    public int RegionAccess()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int ended = _active;
            if (ended >= 0)
            {
                _states[ended] = PlatformIrqState.Inactive;
                _active = -1;
                _host.Complete(ended);
            }
            if (_fifoCount > 0)
            {
                int next = _fifo[_fifoHead];
                _fifoHead = (_fifoHead + 1) % _fifo.Length;
                _fifoCount--;
                Activate(next);
            }
            return ended;
        }
    }

    /// <summary>Stops the quiet-period timer; later inputs throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }
        _timer?.Dispose();
    }

    /// <summary>The quiet period ended: back to the fast path when no IRQ is active, otherwise check again one quiet
    /// period later.</summary>
    private void QuietPeriodElapsed()
    {
        lock (_lock)
        {
            if (_disposed || _fastPath)
            {
                return;
            }
            if (_active >= 0)
            {
                _timer!.Change(_quietPeriod, Timeout.InfiniteTimeSpan);
                return;
            }
            _fastPath = true;
            _host.SetFastPath(true);
        }
    }

    private void Activate(int irq)
    {
        _states[irq] = PlatformIrqState.Active;
        _active = irq;
        _host.Inject(irq);
    }

    private void CheckIrq(int irq)
    {
        if ((uint)irq >= (uint)_states.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(irq), irq, $"The EOI state machine has IRQs 0 to {_states.Length - 1}.");
        }
    }
}
