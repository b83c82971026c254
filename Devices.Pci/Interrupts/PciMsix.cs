// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// MSI-X of a <see cref="VfioPciDevice"/>: up to 2048 vectors, as many as the capability's table has, each signalling
/// its own eventfd. MSI-X can be enabled with no vector wired, and vectors added and removed while it stays enabled.
/// </summary>
/// <remarks>
/// <para>Growing: where the kernel allocates vectors on demand (dynamic MSI-X, no NORESIZE flag) new vectors are wired
/// in place; otherwise MSI-X is disabled and enabled again with the larger count, the existing eventfds kept (QEMU's
/// way), and a host that cannot allocate them leaves the previous vectors in place.</para>
/// <para>Masking: vfio-pci (Linux 6.12) refuses <c>ACTION_MASK</c>/<c>ACTION_UNMASK</c> on MSI and MSI-X
/// (<c>ENOTTY</c>), so <see cref="Mask"/> detaches the vector's eventfd: the kernel frees the vector's handler, which
/// masks the vector in the device's table, and the device holds a message in its pending bit; <see cref="Unmask"/>
/// wires the same eventfd again, which unmasks the vector and lets a pending message through. A kernel that accepts
/// <c>ACTION_MASK</c> for MSI-X is used directly (tried once per device).</para>
/// </remarks>
public sealed class PciMsix : PciVectorInterrupts, IPciRearmable
{
    private bool[] _masked = [];
    private bool _enabled;
    private bool? _kernelMasks;

    internal PciMsix(VfioPciDevice owner, PciMsixLayout? layout)
        : base(owner, "MSI-X")
    {
        Layout = layout;
    }

    /// <summary>The MSI-X capability's layout (table size, table and PBA location), or null when the device has none.</summary>
    public PciMsixLayout? Layout { get; }

    /// <summary>Whether the device has an MSI-X capability.</summary>
    public bool IsAvailable => Layout is not null;

    /// <summary>The table size: the most vectors the device has (0 without MSI-X).</summary>
    public override int MaxVectors => Layout?.VectorCount ?? 0;

    /// <summary>Whether MSI-X is enabled (possibly with no vector).</summary>
    public bool IsEnabled => Volatile.Read(ref _enabled);

    /// <summary>Whether <see cref="Mask"/> uses the kernel's mask action (true), detaches the eventfd (false), or has
    /// not been tried yet (null).</summary>
    public bool? KernelMasksVectors => _kernelMasks;

    /// <summary>
    /// Enables MSI-X with <paramref name="vectors"/> vectors wired to new eventfds, or with none (0): the device is then
    /// in MSI-X mode with every vector unwired, as a guest that sets MSI-X Enable before it unmasks any vector.
    /// </summary>
    /// <param name="vectors">How many vectors, 0 to <see cref="MaxVectors"/>.</param>
    /// <param name="acceptFewer">True to take the fewer vectors the host can allocate; false to fail instead.</param>
    /// <returns>The number of vectors wired.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vectors"/> is negative.</exception>
    /// <exception cref="VfioPciInterruptException">The device has no MSI-X (<see cref="PciInterruptFailure.NotSupported"/>),
    /// has fewer vectors (<see cref="PciInterruptFailure.TooManyVectors"/>), or the host could allocate fewer and
    /// <paramref name="acceptFewer"/> is false (<see cref="PciInterruptFailure.VectorsUnavailable"/>).</exception>
    /// <exception cref="InvalidOperationException">MSI-X is enabled already, or INTx or MSI is (disable it first).</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public int Enable(int vectors = 0, bool acceptFewer = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(vectors);
        const string Operation = "enable MSI-X";
        PciMsixLayout layout = CheckCount(Operation, vectors);
        lock (Owner.InterruptLock)
        {
            Owner.EnterInterruptMode(PciInterruptMode.Msix, "MSI-X");
            var events = new InterruptEvent?[layout.VectorCount];
            PciVectors.Create(events, 0, vectors);
            int wired = -1;
            try
            {
                wired = EnableVectors(VfioPciIrq.Msix, events, vectors, acceptFewer, Operation);
            }
            finally
            {
                if (wired < 0)
                {
                    PciVectors.Dispose(events, 0, events.Length);
                }
            }
            _masked = new bool[events.Length];
            SetVectors(events, wired);
            Volatile.Write(ref _enabled, true);
            Owner.InterruptMode = PciInterruptMode.Msix;
            return wired;
        }
    }

    /// <summary>
    /// Grows or shrinks the vectors in use to <paramref name="vectors"/>, MSI-X staying enabled: new vectors get new
    /// eventfds (unmasked), removed ones are unwired and their eventfds freed.
    /// </summary>
    /// <param name="vectors">The new count, 0 to <see cref="MaxVectors"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vectors"/> is negative.</exception>
    /// <exception cref="VfioPciInterruptException">The device has fewer vectors (<see cref="PciInterruptFailure.TooManyVectors"/>),
    /// or the host cannot allocate that many (<see cref="PciInterruptFailure.VectorsUnavailable"/>; the previous vectors
    /// stay).</exception>
    /// <exception cref="InvalidOperationException">MSI-X is not enabled.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void SetVectorCount(int vectors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(vectors);
        const string Operation = "resize MSI-X";
        CheckCount(Operation, vectors);
        lock (Owner.InterruptLock)
        {
            ThrowIfNotEnabled();
            int count = VectorCount;
            if (vectors > count)
            {
                Grow(count, vectors, Operation);
            }
            else if (vectors < count)
            {
                // Unwire the removed vectors (the kernel keeps their host interrupts allocated until MSI-X is disabled).
                Span<InterruptEvent?> none = new InterruptEvent?[count - vectors];
                Owner.Device.SetIrqEventFds(VfioPciIrq.Msix, vectors, none);
                PciVectors.Dispose(Vectors, vectors, count);
                _masked.AsSpan(vectors, count - vectors).Clear();
            }
            SetCount(vectors);
        }
    }

    /// <summary>Whether <paramref name="vector"/> is masked by <see cref="Mask"/>.</summary>
    /// <param name="vector">The vector.</param>
    /// <returns>True when masked.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The vector is not in use.</exception>
    public bool IsMasked(int vector)
    {
        GetVector(vector);
        return Volatile.Read(ref _masked[vector]);
    }

    /// <summary>Masks <paramref name="vector"/>: its eventfd is not signalled until <see cref="Unmask"/>; a message the
    /// device sends meanwhile is held in its pending bit (see the remarks of <see cref="PciMsix"/>).</summary>
    /// <param name="vector">The vector.</param>
    /// <exception cref="ArgumentOutOfRangeException">The vector is not in use.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void Mask(int vector) => SetMasked(vector, masked: true);

    /// <summary>Unmasks <paramref name="vector"/>.</summary>
    /// <param name="vector">The vector.</param>
    /// <exception cref="ArgumentOutOfRangeException">The vector is not in use.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void Unmask(int vector) => SetMasked(vector, masked: false);

    /// <summary>Disables MSI-X and frees its eventfds; does nothing when it is not enabled.</summary>
    public void Disable()
    {
        lock (Owner.InterruptLock)
        {
            if (!_enabled)
            {
                return;
            }
            try
            {
                Disarm();
            }
            finally
            {
                ReleaseVectors();
                _masked = [];
                Volatile.Write(ref _enabled, false);
                Owner.InterruptMode = PciInterruptMode.None;
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString()
        => Layout is { } l ? $"{ObjectName}: {l.VectorCount} vector(s){(IsEnabled ? $", enabled with {VectorCount}" : "")}" : $"{ObjectName}: none";

    /// <summary>Disables MSI-X in the kernel and keeps the eventfds (before a reset). Caller holds the interrupt lock.</summary>
    void IPciRearmable.Disarm() => Disarm();

    void IPciRearmable.Rearm() => Rearm();

    internal void Disarm()
    {
        if (_enabled)
        {
            Owner.DisableIrqIfOpen(VfioPciIrq.Msix);
        }
    }

    /// <summary>Enables MSI-X again with the kept eventfds, masked vectors unwired (after a reset). Caller holds the
    /// interrupt lock.</summary>
    internal void Rearm()
    {
        if (!_enabled)
        {
            return;
        }
        Rewire(VectorCount);
    }

    private PciMsixLayout CheckCount(string operation, int vectors)
    {
        if (Layout is not { } layout)
        {
            throw PciVectors.Absent(operation, ObjectName, "the device has no MSI-X capability", "Use MSI or INTx if the device has them (device.Msi, device.Intx).");
        }
        if (vectors > layout.VectorCount)
        {
            throw PciVectors.TooMany(operation, ObjectName, vectors, layout.VectorCount, "MSI-X");
        }
        return layout;
    }

    private void ThrowIfNotEnabled()
    {
        if (!_enabled)
        {
            throw new InvalidOperationException($"{ObjectName} is not enabled; call Enable first.");
        }
    }

    private void Grow(int count, int vectors, string operation)
    {
        PciVectors.Create(Vectors, count, vectors - count);
        bool done = false;
        try
        {
            if (!Owner.Device.GetIrq(VfioPciIrq.Msix).IsNoResize)
            {
                // Dynamic MSI-X: the kernel allocates the new vectors as they are wired.
                Owner.Device.SetIrqEventFds(VfioPciIrq.Msix, count, Vectors.AsSpan(count, vectors - count));
                done = true;
                return;
            }
            // A fixed set: disable and enable again with the larger count (the kernel keeps nothing across).
            Owner.Device.DisableIrq(VfioPciIrq.Msix);
            bool wired;
            int available;
            try
            {
                wired = Owner.Device.TrySetIrqEventFds(VfioPciIrq.Msix, 0, Wiring(vectors).AsSpan(0, vectors), out available);
            }
            catch (VfioException)
            {
                Rewire(count);
                throw;
            }
            if (wired)
            {
                done = true;
                return;
            }
            Rewire(count);
            throw PciVectors.Unavailable(operation, ObjectName, vectors, available);
        }
        finally
        {
            if (!done)
            {
                PciVectors.Dispose(Vectors, count, vectors);
            }
        }
    }

    /// <summary>Enables MSI-X with the previous <paramref name="count"/> vectors again, after a failed re-enable.</summary>
    private void Rewire(int count) => Owner.Device.SetIrqEventFds(VfioPciIrq.Msix, 0, Wiring(count).AsSpan(0, Math.Max(count, 1)));

    /// <summary>The eventfds to wire for vectors 0..<paramref name="count"/>: masked vectors unwired (null).</summary>
    private InterruptEvent?[] Wiring(int count)
    {
        var wiring = new InterruptEvent?[Math.Max(count, 1)];
        for (int i = 0; i < count; i++)
        {
            wiring[i] = _masked[i] ? null : Vectors[i];
        }
        return wiring;
    }

    private void SetMasked(int vector, bool masked)
    {
        lock (Owner.InterruptLock)
        {
            InterruptEvent evt = GetVector(vector);
            if (_masked[vector] == masked)
            {
                return;
            }
            VfioDevice device = Owner.Device;
            if (_kernelMasks != false)
            {
                try
                {
                    if (masked)
                    {
                        device.MaskIrq(VfioPciIrq.Msix, vector);
                    }
                    else
                    {
                        device.UnmaskIrq(VfioPciIrq.Msix, vector);
                    }
                    _kernelMasks = true;
                    Volatile.Write(ref _masked[vector], masked);
                    return;
                }
                catch (VfioException e) when (e.Errno == Errno.ENOTTY && _kernelMasks is null)
                {
                    _kernelMasks = false;
                }
            }
            device.SetIrqEventFds(VfioPciIrq.Msix, vector, [masked ? null : evt]);
            Volatile.Write(ref _masked[vector], masked);
        }
    }
}
