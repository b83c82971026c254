// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>The device's interrupts: INTx, MSI, MSI-X (one of them enabled at a time) and the ERR and REQ notifications.</summary>
public sealed partial class VfioPciDevice
{
    private readonly Lock _interruptLock = new();
    private PciIntx? _intx;
    private PciMsi? _msi;
    private PciMsix? _msix;
    private PciNotification? _errorNotification;
    private PciNotification? _requestNotification;
    private volatile PciInterruptMode _interruptMode;

    /// <summary>Which of INTx, MSI and MSI-X is enabled.</summary>
    public PciInterruptMode InterruptMode
    {
        get => _interruptMode;
        internal set => _interruptMode = value;
    }

    /// <summary>The INTx line (pin from config space; <see cref="PciIntx.IsAvailable"/> is false without one).</summary>
    public PciIntx Intx => Once(ref _intx, static d => new PciIntx(d, d.InterruptPin));

    /// <summary>MSI (<see cref="PciMsi.IsAvailable"/> is false without an MSI capability).</summary>
    public PciMsi Msi => Once(ref _msi, static d => new PciMsi(d, d.ReadMsiCapability()));

    /// <summary>MSI-X (<see cref="PciMsix.IsAvailable"/> is false without an MSI-X capability).</summary>
    public PciMsix Msix => Once(ref _msix, static d => new PciMsix(d, d.MsixLayout));

    /// <summary>The error (AER) notification; offered by the kernel for PCI Express devices only.</summary>
    public PciNotification ErrorNotification
        => Once(ref _errorNotification, static d => new PciNotification(d, VfioPciIrq.Error, "ERR"));

    /// <summary>The release request: the kernel signals it when it wants the device back (unbind, hot unplug).</summary>
    public PciNotification RequestNotification
        => Once(ref _requestNotification, static d => new PciNotification(d, VfioPciIrq.Request, "REQ"));

    internal Lock InterruptLock => _interruptLock;

    /// <summary>Throws when another interrupt mode, or this one, is enabled (vfio-pci allows one at a time). Caller
    /// holds the interrupt lock.</summary>
    internal void EnterInterruptMode(PciInterruptMode mode, string name)
    {
        PciInterruptMode current = _interruptMode;
        if (current == mode)
        {
            throw new InvalidOperationException($"{Name}: {name} is enabled already; Disable it first.");
        }
        if (current != PciInterruptMode.None)
        {
            throw new InvalidOperationException($"{Name}: {current} is enabled, and vfio-pci allows one of INTx, MSI and MSI-X at a time; disable {current} before enabling {name}.");
        }
    }

    /// <summary>Before a reset: unwires the enabled interrupt mode in the kernel and keeps its eventfds (a reset clears
    /// the device's MSI/MSI-X enable bits behind the kernel's back). Pair it with <see cref="RearmInterruptsAfterReset"/>;
    /// the mode stays recorded, so enabling another in between is refused.</summary>
    internal void DisarmInterruptsForReset()
    {
        lock (_interruptLock)
        {
            EnabledInterrupts()?.Disarm();
        }
    }

    /// <summary>After a reset: wires the interrupt mode that was enabled again, with the same eventfds (re-arms INTx,
    /// re-enables MSI/MSI-X with masked vectors left unwired).</summary>
    internal void RearmInterruptsAfterReset()
    {
        lock (_interruptLock)
        {
            EnabledInterrupts()?.Rearm();
        }
    }

    /// <summary>The enabled mode's object. Caller holds the interrupt lock.</summary>
    private IPciRearmable? EnabledInterrupts() => _interruptMode switch
    {
        PciInterruptMode.Intx => _intx,
        PciInterruptMode.Msi => _msi,
        PciInterruptMode.Msix => _msix,
        _ => null,
    };

    private T Once<T>(ref T? field, Func<VfioPciDevice, T> create)
        where T : class
    {
        if (Volatile.Read(ref field) is { } value)
        {
            return value;
        }
        lock (_interruptLock)
        {
            return field ??= create(this);
        }
    }

    /// <summary>Disables IRQ index <paramref name="index"/> (<c>DATA_NONE | ACTION_TRIGGER</c>, count 0: for ERR/REQ
    /// this removes the eventfd); nothing to do when the device fd is closed, as the kernel dropped every eventfd with
    /// it.</summary>
    internal void DisableIrqIfOpen(int index)
    {
        try
        {
            Device.DisableIrq(index);
        }
        catch (ObjectDisposedException)
        {
            // The device fd is closed.
        }
    }

    /// <summary>Sets INTx's unmask eventfd; nothing to do when the device fd is closed.</summary>
    internal void SetIntxUnmaskIfOpen(InterruptEvent? unmask)
    {
        try
        {
            Device.SetIrqUnmaskEventFd(VfioPciIrq.Intx, unmask);
        }
        catch (ObjectDisposedException)
        {
            // The device fd is closed.
        }
    }

    /// <summary>On dispose: disables every interrupt and notification this object enabled.</summary>
    partial void DisposeInterrupts() => DisableInterrupts();

    /// <summary>Before a reset: the enabled interrupt mode is taken down (its eventfds kept), as QEMU does.</summary>
    partial void BeforeResetInterrupts() => DisarmInterruptsForReset();

    /// <summary>After a reset: the interrupt mode that was on is armed again with the same eventfds (QEMU re-arms
    /// INTx; MSI and MSI-X come back too, so a driver's waits go on).</summary>
    partial void AfterResetInterrupts() => RearmInterruptsAfterReset();

    /// <summary>Disables every interrupt and notification this object enabled.</summary>
    private void DisableInterrupts()
    {
        _intx?.Disable();
        _msi?.Disable();
        _msix?.Disable();
        _errorNotification?.Disable();
        _requestNotification?.Disable();
    }

    private PciMsiCapability? ReadMsiCapability()
        => FindCapability(PciCapabilityId.Msi) is { } msi ? new PciMsiCapability(msi.Offset, ReadConfig16(msi.Offset + 2)) : null;
}
