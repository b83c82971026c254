// SPDX-License-Identifier: MIT
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    private readonly List<DmaFault> _dmaFaults = [];

    /// <summary>Every DMA the simulated IOMMU blocked, oldest first.</summary>
    public IReadOnlyList<DmaFault> DmaFaults
    {
        get
        {
            lock (_dmaFaults)
            {
                return [.. _dmaFaults];
            }
        }
    }

    /// <summary>Device DMA through the device's current IOMMU translation; a blocked access is recorded and touches nothing.</summary>
    /// <remarks>The access is translated a page at a time (an IOMMU, and physical memory, are paged): every page must
    /// translate before a byte moves, so a refused access touches nothing.</remarks>
    internal bool DeviceDma(SimDevice device, ulong iova, Span<byte> readInto, ReadOnlySpan<byte> writeFrom, bool write)
    {
        if (device.Removed)
        {
            // The device is gone: it issues no DMA at all (nothing to fault either).
            return false;
        }
        ulong length = (ulong)(write ? writeFrom.Length : readInto.Length);
        string? reason = null;
        if (device.Dma is null)
        {
            reason = "the device is in no IOMMU domain";
        }
        else if (length == 0 || iova > ulong.MaxValue - (length - 1) || !Walk(device.Dma, iova, readInto, writeFrom, write, copy: false))
        {
            reason = device.Dma is SimulatedPhysicalMemory
                ? "no memory at that physical address (no locked page has that frame)"
                : write ? "the IOVA range is not mapped writable" : "the IOVA range is not mapped";
        }
        if (reason is not null)
        {
            lock (_dmaFaults)
            {
                _dmaFaults.Add(new DmaFault(device.Name, iova, length, write, reason));
            }
            return false;
        }
        return Walk(device.Dma!, iova, readInto, writeFrom, write, copy: true);
    }

    /// <summary>Translates the access page by page; copies when <paramref name="copy"/> is true.</summary>
    private static bool Walk(IDmaSpace space, ulong iova, Span<byte> readInto, ReadOnlySpan<byte> writeFrom, bool write, bool copy)
    {
        const ulong Page = 4096;
        int total = write ? writeFrom.Length : readInto.Length;
        int done = 0;
        while (done < total)
        {
            ulong at = iova + (ulong)done;
            int chunk = (int)Math.Min((ulong)(total - done), Page - (at % Page));
            if (!space.TryTranslate(at, (ulong)chunk, write, out nint address))
            {
                return false;
            }
            if (copy)
            {
                if (write)
                {
                    writeFrom.Slice(done, chunk).CopyTo(UserMemory.Span(address, chunk));
                }
                else
                {
                    UserMemory.Span(address, chunk).CopyTo(readInto.Slice(done, chunk));
                }
            }
            done += chunk;
        }
        return true;
    }
}
