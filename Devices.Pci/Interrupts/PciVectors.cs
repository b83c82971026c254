// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>Helpers for vector eventfds and the typed errors of the interrupt types.</summary>
internal static class PciVectors
{
    /// <summary>Creates <paramref name="count"/> events into <paramref name="events"/>[<paramref name="start"/>..].</summary>
    internal static void Create(InterruptEvent?[] events, int start, int count)
    {
        for (int i = start; i < start + count; i++)
        {
            events[i] = new InterruptEvent();
        }
    }

    /// <summary>Disposes and clears <paramref name="events"/>[<paramref name="start"/>..<paramref name="end"/>).</summary>
    internal static void Dispose(InterruptEvent?[] events, int start, int end)
    {
        for (int i = start; i < end; i++)
        {
            events[i]?.Dispose();
            events[i] = null;
        }
    }

    internal static VfioPciInterruptException TooMany(string operation, string objectName, int asked, int maximum, string what)
        => new(PciInterruptFailure.TooManyVectors, operation, objectName,
            $"{asked} vectors were asked for, but the device's {what} capability offers {maximum}",
            $"Ask for at most {maximum} vector(s).", maximum);

    internal static VfioPciInterruptException Unavailable(string operation, string objectName, int asked, int available)
        => new(PciInterruptFailure.VectorsUnavailable, operation, objectName,
            $"the host could allocate only {available} of the {asked} vectors asked for, so the kernel enabled none",
            $"Ask for at most {available} vector(s), or let the call accept fewer (acceptFewer: true) as QEMU does.", available);

    internal static VfioPciInterruptException Absent(string operation, string objectName, string detail, string hint)
        => new(PciInterruptFailure.NotSupported, operation, objectName, detail, hint);
}
