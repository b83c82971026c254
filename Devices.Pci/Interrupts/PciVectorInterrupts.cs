// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>What MSI (<see cref="PciMsi"/>) and MSI-X (<see cref="PciMsix"/>) share: vectors 0 to
/// <see cref="VectorCount"/> − 1, each signalling its own eventfd, and the waits on them.</summary>
public abstract class PciVectorInterrupts
{
    private InterruptEvent?[] _vectors = [];
    private int _count;

    private protected PciVectorInterrupts(VfioPciDevice owner, string kind)
    {
        Owner = owner;
        ObjectName = $"{owner.Name} {kind}";
    }

    /// <summary>The number of vectors with an eventfd (0 when disabled).</summary>
    public int VectorCount => Volatile.Read(ref _count);

    /// <summary>The most vectors the device has (0 when it has no such capability).</summary>
    public abstract int MaxVectors { get; }

    private protected VfioPciDevice Owner { get; }

    private protected string ObjectName { get; }

    /// <summary>The eventfds by vector (the array's length is the most the device has); set with the count.</summary>
    private protected InterruptEvent?[] Vectors => _vectors;

    /// <summary>The eventfd of vector <paramref name="vector"/> (owned by this object).</summary>
    /// <param name="vector">The vector, below <see cref="VectorCount"/>.</param>
    /// <returns>Its event.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The vector has no eventfd.</exception>
    public InterruptEvent GetVector(int vector)
    {
        int count = VectorCount;
        if ((uint)vector >= (uint)count)
        {
            throw new ArgumentOutOfRangeException(nameof(vector), vector,
                count == 0 ? $"{ObjectName} has no vector enabled; enable some first." : $"{ObjectName} has {count} vector(s) enabled; use a vector below {count}.");
        }
        return _vectors[vector] ?? throw new InvalidOperationException($"{ObjectName} vector {vector} has no eventfd.");
    }

    /// <summary>Waits for an interrupt on <paramref name="vector"/> (or returns at once with those signalled since the
    /// last wait). Allocation-free.</summary>
    /// <param name="vector">The vector.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The number of interrupts since the last wait.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The vector has no eventfd.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<ulong> WaitAsync(int vector, CancellationToken cancellationToken = default) => GetVector(vector).WaitAsync(cancellationToken);

    /// <summary>Waits up to <paramref name="timeout"/> for an interrupt on <paramref name="vector"/>.</summary>
    /// <param name="vector">The vector.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="count">The number of interrupts since the last wait; 0 on timeout.</param>
    /// <returns>True when an interrupt was signalled.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The vector has no eventfd.</exception>
    public bool TryWait(int vector, TimeSpan timeout, out ulong count) => GetVector(vector).TryWait(timeout, out count);

    /// <summary>Takes <paramref name="vectors"/> as the eventfds and <paramref name="count"/> as the count.</summary>
    private protected void SetVectors(InterruptEvent?[] vectors, int count)
    {
        _vectors = vectors;
        Volatile.Write(ref _count, count);
    }

    private protected void SetCount(int count) => Volatile.Write(ref _count, count);

    /// <summary>Frees every eventfd and sets the count to 0.</summary>
    private protected void ReleaseVectors()
    {
        PciVectors.Dispose(_vectors, 0, _vectors.Length);
        SetVectors([], 0);
    }

    /// <summary>Wires <paramref name="events"/>[..<paramref name="vectors"/>] to the index (at least one entry: with
    /// none, one vector is allocated and left unwired), retrying with the host's count when allowed. Returns the count
    /// wired; disposes the events it gave up.</summary>
    private protected int EnableVectors(int index, InterruptEvent?[] events, int vectors, bool acceptFewer, string operation)
    {
        while (!Owner.Device.TrySetIrqEventFds(index, 0, events.AsSpan(0, Math.Max(vectors, 1)), out int available))
        {
            if (!acceptFewer || available < 1)
            {
                throw PciVectors.Unavailable(operation, ObjectName, vectors, available);
            }
            PciVectors.Dispose(events, available, vectors);
            vectors = available;
        }
        return vectors;
    }
}
