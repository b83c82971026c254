// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Platform;

/// <summary>How a <see cref="VfioPlatformIrq"/> is unmasked after each interrupt.</summary>
public enum VfioPlatformUnmaskMode
{
    /// <summary>Nothing to unmask: an edge IRQ, or an IRQ that is not enabled.</summary>
    None,

    /// <summary>Signalling the unmask (resample) eventfd registered with the kernel (<c>ACTION_UNMASK</c> eventfd).</summary>
    EventFd,

    /// <summary>An explicit <c>ACTION_UNMASK</c> call, where the kernel refused an unmask eventfd.</summary>
    Ioctl,
}

/// <summary>
/// One IRQ of a <see cref="VfioPlatformDevice"/>: level-triggered (the kernel automasks it on each interrupt; it must
/// be unmasked after handling) or edge-triggered. <see cref="Enable"/> wires a trigger eventfd and, for a level IRQ, an
/// unmask (resample) eventfd.
/// </summary>
public sealed class VfioPlatformIrq : IDisposable
{
    private readonly VfioPlatformDevice _owner;
    private readonly Lock _lock = new();
    private InterruptEvent? _trigger;
    private InterruptEvent? _unmask;
    private bool _ownsUnmask;

    internal VfioPlatformIrq(VfioPlatformDevice owner, VfioIrqInfo info)
    {
        _owner = owner;
        Info = info;
    }

    /// <summary>The IRQ index.</summary>
    public int Index => Info.Index;

    /// <summary>What the kernel reported for the IRQ.</summary>
    public VfioIrqInfo Info { get; }

    /// <summary>Level-triggered: the kernel automasks it on each interrupt (<c>VFIO_IRQ_INFO_AUTOMASKED</c>).</summary>
    public bool IsLevelTriggered => Info.IsAutomasked;

    /// <summary>Whether <see cref="Enable"/> wired it.</summary>
    public bool IsEnabled => Volatile.Read(ref _trigger) is not null;

    /// <summary>How <see cref="Unmask"/> unmasks it.</summary>
    public VfioPlatformUnmaskMode UnmaskMode { get; private set; }

    /// <summary>The trigger eventfd while enabled (owned by the IRQ).</summary>
    public InterruptEvent? Trigger => Volatile.Read(ref _trigger);

    internal string Name => $"{_owner.Name} IRQ {Index}";

    /// <summary>
    /// Wires the IRQ to a new trigger eventfd. A level IRQ also gets an unmask eventfd: <paramref name="resample"/>
    /// when given (e.g. the resample fd of a KVM irqfd), otherwise one the IRQ creates; when the kernel refuses the
    /// IRQ's own unmask eventfd, <see cref="Unmask"/> falls back to an explicit unmask call.
    /// </summary>
    /// <param name="resample">For a level IRQ, an unmask eventfd the caller signals (it stays the caller's); null for
    /// none.</param>
    /// <exception cref="ArgumentException"><paramref name="resample"/> is given for an edge IRQ, which the kernel never
    /// masks.</exception>
    /// <exception cref="InvalidOperationException">The IRQ is enabled already.</exception>
    /// <exception cref="VfioException">The kernel refused the trigger eventfd, or the caller's unmask eventfd (nothing
    /// stays wired).</exception>
    public void Enable(InterruptEvent? resample = null)
    {
        if (resample is not null && !IsLevelTriggered)
        {
            throw new ArgumentException($"{Name} is edge-triggered: the kernel does not mask it, so it takes no resample (unmask) eventfd. Enable it without one.", nameof(resample));
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_owner.IsDisposed, _owner);
            if (_trigger is not null)
            {
                throw new InvalidOperationException($"{Name} is enabled already; Disable it first.");
            }
            InterruptEvent? trigger = new();
            try
            {
                _owner.Device.SetIrqEventFds(Index, 0, [trigger]);
                try
                {
                    UnmaskMode = IsLevelTriggered ? RegisterUnmask(resample) : VfioPlatformUnmaskMode.None;
                }
                catch
                {
                    _owner.Device.DisableIrq(Index);
                    throw;
                }
                Volatile.Write(ref _trigger, trigger);
                trigger = null;
            }
            finally
            {
                trigger?.Dispose();
            }
        }
    }

    /// <summary>Waits for the next interrupt (or returns at once with those signalled since the last wait).</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The number of interrupts signalled since the last wait.</returns>
    /// <exception cref="InvalidOperationException">The IRQ is not enabled.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<ulong> WaitAsync(CancellationToken cancellationToken = default) => EnabledTrigger().WaitAsync(cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/> for an interrupt.</summary>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="count">The number of interrupts signalled since the last wait; 0 on timeout.</param>
    /// <returns>True when an interrupt was signalled.</returns>
    /// <exception cref="InvalidOperationException">The IRQ is not enabled.</exception>
    public bool TryWait(TimeSpan timeout, out ulong count) => EnabledTrigger().TryWait(timeout, out count);

    /// <summary>Unmasks a level IRQ after its interrupt was handled (by its unmask eventfd, or explicitly where the
    /// kernel refused one); does nothing for an edge IRQ.</summary>
    /// <exception cref="InvalidOperationException">The IRQ is not enabled.</exception>
    /// <exception cref="VfioException">The kernel refused the explicit unmask.</exception>
    public void Unmask()
    {
        EnabledTrigger();
        switch (UnmaskMode)
        {
            case VfioPlatformUnmaskMode.EventFd:
                Volatile.Read(ref _unmask)?.Signal();
                break;
            case VfioPlatformUnmaskMode.Ioctl:
                _owner.Device.UnmaskIrq(Index);
                break;
        }
    }

    /// <summary>Unwires the IRQ (unmask eventfd, then trigger) and frees its eventfds; does nothing when it is not
    /// enabled.</summary>
    public void Disable()
    {
        lock (_lock)
        {
            InterruptEvent? trigger = _trigger;
            if (trigger is null)
            {
                return;
            }
            Volatile.Write(ref _trigger, null);
            try
            {
                if (UnmaskMode == VfioPlatformUnmaskMode.EventFd)
                {
                    _owner.Device.SetIrqUnmaskEventFd(Index, null);
                }
                _owner.Device.DisableIrq(Index);
            }
            catch (ObjectDisposedException)
            {
                // The device fd is closed: the kernel dropped every eventfd of the device with it.
            }
            finally
            {
                if (_ownsUnmask)
                {
                    _unmask?.Dispose();
                }
                _unmask = null;
                _ownsUnmask = false;
                UnmaskMode = VfioPlatformUnmaskMode.None;
                trigger.Dispose();
            }
        }
    }

    /// <summary>Disables the IRQ.</summary>
    public void Dispose() => Disable();

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {(IsLevelTriggered ? "level" : "edge")}{(IsEnabled ? ", enabled" : "")}";

    private VfioPlatformUnmaskMode RegisterUnmask(InterruptEvent? resample)
    {
        if (resample is not null)
        {
            _owner.Device.SetIrqUnmaskEventFd(Index, resample);
            _unmask = resample;
            _ownsUnmask = false;
            return VfioPlatformUnmaskMode.EventFd;
        }
        var own = new InterruptEvent();
        try
        {
            _owner.Device.SetIrqUnmaskEventFd(Index, own);
        }
        catch (VfioException)
        {
            own.Dispose();
            return VfioPlatformUnmaskMode.Ioctl;
        }
        _unmask = own;
        _ownsUnmask = true;
        return VfioPlatformUnmaskMode.EventFd;
    }

    private InterruptEvent EnabledTrigger()
        => Volatile.Read(ref _trigger) ?? throw new InvalidOperationException($"{Name} is not enabled; call Enable first.");
}
