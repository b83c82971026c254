// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// The legacy INTx line of a <see cref="VfioPciDevice"/>: level-triggered, so the kernel masks it each time it fires
/// and it must be unmasked after the device's interrupt was handled (<see cref="EndOfInterrupt"/>). The pin comes from
/// config space (Interrupt Pin, 0x3d).
/// </summary>
/// <remarks>
/// <see cref="Enable"/> wires a trigger eventfd and an unmask (resample) eventfd: the caller's, e.g. the resample fd of a
/// KVM irqfd, or one the line creates, which <see cref="EndOfInterrupt"/> signals. When the kernel refuses the line's own
/// unmask eventfd, <see cref="EndOfInterrupt"/> falls back to an explicit unmask call.
/// </remarks>
public sealed class PciIntx : IPciRearmable
{
    private readonly VfioPciDevice _owner;
    private InterruptEvent? _trigger;
    private InterruptEvent? _unmask;
    private bool _ownsUnmask;

    internal PciIntx(VfioPciDevice owner, byte pin)
    {
        _owner = owner;
        Pin = pin;
    }

    /// <summary>The interrupt pin from config space: 1–4 for INTA–INTD, 0 when the device has no INTx.</summary>
    public byte Pin { get; }

    /// <summary>The pin's name (<c>INTA</c>…<c>INTD</c>), or <c>none</c>.</summary>
    public string PinName => Pin is >= 1 and <= 4 ? "INT" + (char)('A' + Pin - 1) : "none";

    /// <summary>Whether the device has INTx (a pin in config space).</summary>
    public bool IsAvailable => Pin != 0;

    /// <summary>Whether <see cref="Enable"/> wired it.</summary>
    public bool IsEnabled => Volatile.Read(ref _trigger) is not null;

    /// <summary>The trigger eventfd while enabled (owned by the line; hand its handle to a KVM irqfd if wanted).</summary>
    public InterruptEvent? Trigger => Volatile.Read(ref _trigger);

    /// <summary>Whether <see cref="EndOfInterrupt"/> signals an unmask eventfd (true) or calls the kernel (false).</summary>
    public bool UsesUnmaskEventFd { get; private set; }

    private string ObjectName => $"{_owner.Name} INTx";

    /// <summary>
    /// Wires INTx to a new trigger eventfd and an unmask eventfd: <paramref name="resample"/> when given (it stays the
    /// caller's), otherwise one the line creates.
    /// </summary>
    /// <param name="resample">An unmask (resample) eventfd the caller signals after each interrupt; null for one of the
    /// line's own.</param>
    /// <exception cref="VfioPciInterruptException">The device has no INTx pin (<see cref="PciInterruptFailure.NotSupported"/>).</exception>
    /// <exception cref="InvalidOperationException">INTx is enabled already, or MSI or MSI-X is (disable it first).</exception>
    /// <exception cref="VfioException">The kernel refused the trigger or the caller's unmask eventfd (nothing stays wired).</exception>
    public void Enable(InterruptEvent? resample = null)
    {
        if (!IsAvailable)
        {
            throw PciVectors.Absent("enable INTx", ObjectName, "the device has no INTx pin (Interrupt Pin 0x3d is 0)",
                "Use MSI or MSI-X (device.Msi, device.Msix).");
        }
        lock (_owner.InterruptLock)
        {
            _owner.EnterInterruptMode(PciInterruptMode.Intx, "INTx");
            InterruptEvent? trigger = new();
            try
            {
                Arm(trigger, resample);
                Volatile.Write(ref _trigger, trigger);
                _owner.InterruptMode = PciInterruptMode.Intx;
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
    /// <exception cref="InvalidOperationException">INTx is not enabled.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<ulong> WaitAsync(CancellationToken cancellationToken = default) => EnabledTrigger().WaitAsync(cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/> for an interrupt.</summary>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="count">The number of interrupts signalled since the last wait; 0 on timeout.</param>
    /// <returns>True when an interrupt was signalled.</returns>
    /// <exception cref="InvalidOperationException">INTx is not enabled.</exception>
    public bool TryWait(TimeSpan timeout, out ulong count) => EnabledTrigger().TryWait(timeout, out count);

    /// <summary>Ends the interrupt: unmasks the line after the device's interrupt was handled (cleared at the device).
    /// If the device still asserts it, the kernel signals it again.</summary>
    /// <exception cref="InvalidOperationException">INTx is not enabled.</exception>
    /// <exception cref="VfioException">The kernel refused the explicit unmask.</exception>
    public void EndOfInterrupt()
    {
        EnabledTrigger();
        if (UsesUnmaskEventFd)
        {
            Volatile.Read(ref _unmask)?.Signal();
        }
        else
        {
            _owner.Device.UnmaskIrq(VfioPciIrq.Intx);
        }
    }

    /// <summary>Masks the line (<c>ACTION_MASK</c>): an interrupt is held until <see cref="Unmask"/>.</summary>
    /// <exception cref="InvalidOperationException">INTx is not enabled.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void Mask()
    {
        EnabledTrigger();
        _owner.Device.MaskIrq(VfioPciIrq.Intx);
    }

    /// <summary>Unmasks the line (<c>ACTION_UNMASK</c>); a held interrupt is signalled at once.</summary>
    /// <exception cref="InvalidOperationException">INTx is not enabled.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void Unmask()
    {
        EnabledTrigger();
        _owner.Device.UnmaskIrq(VfioPciIrq.Intx);
    }

    /// <summary>Unwires INTx (unmask eventfd, then trigger) and frees its eventfds; does nothing when it is not enabled.</summary>
    public void Disable()
    {
        lock (_owner.InterruptLock)
        {
            InterruptEvent? trigger = _trigger;
            if (trigger is null)
            {
                return;
            }
            Volatile.Write(ref _trigger, null);
            _owner.InterruptMode = PciInterruptMode.None;
            try
            {
                Unwire();
            }
            finally
            {
                if (_ownsUnmask)
                {
                    _unmask?.Dispose();
                }
                _unmask = null;
                _ownsUnmask = false;
                trigger.Dispose();
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{ObjectName}: {PinName}{(IsEnabled ? ", enabled" : "")}";

    /// <summary>Unwires INTx in the kernel and keeps the eventfds (before a reset). Caller holds the interrupt lock.</summary>
    void IPciRearmable.Disarm() => Disarm();

    void IPciRearmable.Rearm() => Rearm();

    internal void Disarm()
    {
        if (_trigger is not null)
        {
            Unwire();
        }
    }

    private void Unwire()
    {
        if (UsesUnmaskEventFd)
        {
            _owner.SetIntxUnmaskIfOpen(null);
        }
        _owner.DisableIrqIfOpen(VfioPciIrq.Intx);
    }

    /// <summary>Wires the kept eventfds again (after a reset). Caller holds the interrupt lock.</summary>
    internal void Rearm()
    {
        if (_trigger is { } trigger)
        {
            Arm(trigger, _ownsUnmask ? null : _unmask, _unmask);
        }
    }

    private void Arm(InterruptEvent trigger, InterruptEvent? resample, InterruptEvent? own = null)
    {
        VfioDevice device = _owner.Device;
        device.SetIrqEventFds(VfioPciIrq.Intx, 0, [trigger]);
        try
        {
            if (resample is not null)
            {
                device.SetIrqUnmaskEventFd(VfioPciIrq.Intx, resample);
                _unmask = resample;
                UsesUnmaskEventFd = true;
                return;
            }
            own ??= new InterruptEvent();
            try
            {
                device.SetIrqUnmaskEventFd(VfioPciIrq.Intx, own);
                _unmask = own;
                _ownsUnmask = true;
                UsesUnmaskEventFd = true;
            }
            catch (VfioException)
            {
                own.Dispose();
                _unmask = null;
                _ownsUnmask = false;
                UsesUnmaskEventFd = false;
            }
        }
        catch
        {
            device.DisableIrq(VfioPciIrq.Intx);
            throw;
        }
    }

    private InterruptEvent EnabledTrigger()
        => Volatile.Read(ref _trigger) ?? throw new InvalidOperationException($"{ObjectName} is not enabled; call Enable first.");
}
