// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// MSI of a <see cref="VfioPciDevice"/>: up to 32 vectors, as many as the capability's Multiple Message Capable field
/// says, each signalling its own eventfd. The set of vectors is fixed while enabled (the kernel reports MSI as
/// NORESIZE): to change it, disable and enable again.
/// </summary>
/// <remarks>The host may be able to allocate fewer vectors than asked for (x86 without interrupt remapping gives a
/// device one MSI vector); the kernel then enables nothing and says how many it could. <see cref="Enable"/> retries
/// with that many unless told not to, as QEMU does.</remarks>
public sealed class PciMsi : PciVectorInterrupts, IPciRearmable
{
    internal PciMsi(VfioPciDevice owner, PciMsiCapability? capability)
        : base(owner, "MSI")
    {
        Capability = capability;
    }

    /// <summary>The MSI capability, or null when the device has none.</summary>
    public PciMsiCapability? Capability { get; }

    /// <summary>Whether the device has an MSI capability.</summary>
    public bool IsAvailable => Capability is not null;

    /// <inheritdoc/>
    public override int MaxVectors => Capability?.MaxVectors ?? 0;

    /// <summary>Whether MSI is enabled.</summary>
    public bool IsEnabled => VectorCount > 0;

    /// <summary>
    /// Enables MSI with <paramref name="vectors"/> vectors, each wired to a new eventfd (<see cref="PciVectorInterrupts.GetVector"/>).
    /// When the host can allocate fewer, retries with as many as it can (<paramref name="acceptFewer"/>) or fails.
    /// </summary>
    /// <param name="vectors">How many vectors, 1 to <see cref="MaxVectors"/>.</param>
    /// <param name="acceptFewer">True to take the fewer vectors the host can allocate; false to fail instead.</param>
    /// <returns>The number of vectors enabled.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vectors"/> is below 1.</exception>
    /// <exception cref="VfioPciInterruptException">The device has no MSI (<see cref="PciInterruptFailure.NotSupported"/>), has
    /// fewer vectors (<see cref="PciInterruptFailure.TooManyVectors"/>), or the host could allocate fewer and
    /// <paramref name="acceptFewer"/> is false (<see cref="PciInterruptFailure.VectorsUnavailable"/>).</exception>
    /// <exception cref="InvalidOperationException">MSI is enabled already, or INTx or MSI-X is (disable it first).</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public int Enable(int vectors = 1, bool acceptFewer = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vectors, 1);
        const string Operation = "enable MSI";
        if (Capability is not { } capability)
        {
            throw PciVectors.Absent(Operation, ObjectName, "the device has no MSI capability", "Use MSI-X or INTx if the device has them (device.Msix, device.Intx).");
        }
        if (vectors > capability.MaxVectors)
        {
            throw PciVectors.TooMany(Operation, ObjectName, vectors, capability.MaxVectors, "MSI");
        }
        lock (Owner.InterruptLock)
        {
            Owner.EnterInterruptMode(PciInterruptMode.Msi, "MSI");
            var events = new InterruptEvent?[vectors];
            PciVectors.Create(events, 0, vectors);
            int wired = 0;
            try
            {
                wired = EnableVectors(VfioPciIrq.Msi, events, vectors, acceptFewer, Operation);
            }
            finally
            {
                if (wired == 0)
                {
                    PciVectors.Dispose(events, 0, events.Length);
                }
            }
            SetVectors(events, wired);
            Owner.InterruptMode = PciInterruptMode.Msi;
            return wired;
        }
    }

    /// <summary>Disables MSI and frees its eventfds; does nothing when it is not enabled.</summary>
    public void Disable()
    {
        lock (Owner.InterruptLock)
        {
            if (VectorCount == 0)
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
                Owner.InterruptMode = PciInterruptMode.None;
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString()
        => Capability is { } c ? $"{ObjectName}: {c.MaxVectors} vector(s){(IsEnabled ? $", {VectorCount} enabled" : "")}" : $"{ObjectName}: none";

    /// <summary>Disables MSI in the kernel and keeps the eventfds (before a reset). Caller holds the interrupt lock.</summary>
    void IPciRearmable.Disarm() => Disarm();

    void IPciRearmable.Rearm() => Rearm();

    internal void Disarm()
    {
        if (VectorCount > 0)
        {
            Owner.DisableIrqIfOpen(VfioPciIrq.Msi);
        }
    }

    /// <summary>Enables the kept vectors again (after a reset). Caller holds the interrupt lock.</summary>
    internal void Rearm()
    {
        if (VectorCount > 0)
        {
            Owner.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, Vectors.AsSpan(0, VectorCount));
        }
    }
}
