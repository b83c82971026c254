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
    internal bool DeviceDma(SimDevice device, ulong iova, Span<byte> readInto, ReadOnlySpan<byte> writeFrom, bool write)
    {
        if (device.Removed)
        {
            // The device is gone: it issues no DMA at all (nothing to fault either).
            return false;
        }
        ulong length = (ulong)(write ? writeFrom.Length : readInto.Length);
        string? reason = null;
        nint address = 0;
        if (device.Dma is null)
        {
            reason = "the device is in no IOMMU domain";
        }
        else if (!device.Dma.TryTranslate(iova, length, write, out address))
        {
            reason = write ? "the IOVA range is not mapped writable" : "the IOVA range is not mapped";
        }
        if (reason is not null)
        {
            lock (_dmaFaults)
            {
                _dmaFaults.Add(new DmaFault(device.Name, iova, length, write, reason));
            }
            return false;
        }
        if (write)
        {
            writeFrom.CopyTo(UserMemory.Span(address, writeFrom.Length));
        }
        else
        {
            UserMemory.Span(address, readInto.Length).CopyTo(readInto);
        }
        return true;
    }
}
