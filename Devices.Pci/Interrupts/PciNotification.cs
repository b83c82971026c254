// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// A notification vfio-pci sends about a device rather than from it: the error notification (AER, PCI Express devices
/// only) or the release request (the kernel asks the user to let the device go, e.g. for a hot unplug). Each is one
/// eventfd.
/// </summary>
public sealed class PciNotification
{
    private readonly VfioPciDevice _owner;
    private readonly int _index;
    private InterruptEvent? _event;
    private bool? _available;

    internal PciNotification(VfioPciDevice owner, int index, string name)
    {
        _owner = owner;
        _index = index;
        Name = name;
    }

    /// <summary>The notification's name: <c>ERR</c> or <c>REQ</c>.</summary>
    public string Name { get; }

    /// <summary>Whether the kernel offers it for this device (ERR: only PCI Express devices).</summary>
    public bool IsAvailable
    {
        get
        {
            if (_available is bool known)
            {
                return known;
            }
            bool available;
            try
            {
                available = _owner.Device.Info.IrqCount > _index && _owner.Device.GetIrq(_index).Count > 0;
            }
            catch (VfioException e) when (e.Errno == Errno.EINVAL)
            {
                // vfio-pci refuses the ERR index of a conventional PCI device.
                available = false;
            }
            _available = available;
            return available;
        }
    }

    /// <summary>Whether <see cref="Enable"/> registered its eventfd.</summary>
    public bool IsEnabled => Volatile.Read(ref _event) is not null;

    /// <summary>The eventfd while enabled (owned by this object).</summary>
    public InterruptEvent? Event => Volatile.Read(ref _event);

    private string ObjectName => $"{_owner.Name} {Name}";

    /// <summary>Registers a new eventfd for the notification.</summary>
    /// <exception cref="VfioPciInterruptException">The kernel does not offer it for this device
    /// (<see cref="PciInterruptFailure.NotSupported"/>).</exception>
    /// <exception cref="InvalidOperationException">It is enabled already.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void Enable()
    {
        if (!IsAvailable)
        {
            throw PciVectors.Absent($"enable {Name}", ObjectName,
                _index == VfioPciIrq.Error ? "the kernel offers the error notification only for PCI Express devices, and this one is not" : "the kernel offers no such notification for this device",
                "Check device.ErrorNotification.IsAvailable (or RequestNotification) before enabling it.");
        }
        lock (_owner.InterruptLock)
        {
            if (_event is not null)
            {
                throw new InvalidOperationException($"{ObjectName} is enabled already; Disable it first.");
            }
            InterruptEvent? evt = new();
            try
            {
                _owner.Device.SetIrqEventFds(_index, 0, [evt]);
                Volatile.Write(ref _event, evt);
                evt = null;
            }
            finally
            {
                evt?.Dispose();
            }
        }
    }

    /// <summary>Waits for the notification.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The number of notifications since the last wait.</returns>
    /// <exception cref="InvalidOperationException">It is not enabled.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<ulong> WaitAsync(CancellationToken cancellationToken = default) => Enabled().WaitAsync(cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/> for the notification.</summary>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="count">The number of notifications since the last wait; 0 on timeout.</param>
    /// <returns>True when it was signalled.</returns>
    /// <exception cref="InvalidOperationException">It is not enabled.</exception>
    public bool TryWait(TimeSpan timeout, out ulong count) => Enabled().TryWait(timeout, out count);

    /// <summary>Unregisters the eventfd and frees it; does nothing when it is not enabled.</summary>
    public void Disable()
    {
        lock (_owner.InterruptLock)
        {
            InterruptEvent? evt = _event;
            if (evt is null)
            {
                return;
            }
            Volatile.Write(ref _event, null);
            try
            {
                _owner.DisableIrqIfOpen(_index);
            }
            finally
            {
                evt.Dispose();
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{ObjectName}: {(IsAvailable ? (IsEnabled ? "enabled" : "available") : "not offered")}";

    private InterruptEvent Enabled()
        => Volatile.Read(ref _event) ?? throw new InvalidOperationException($"{ObjectName} is not enabled; call Enable first.");
}
