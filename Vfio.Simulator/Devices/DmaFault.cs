// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>A DMA the simulated IOMMU blocked, as the real one logs a DMAR fault.</summary>
/// <param name="Device">The device that attempted it.</param>
/// <param name="Iova">The address it used.</param>
/// <param name="Length">The length of the access.</param>
/// <param name="Write">True for a write to memory, false for a read.</param>
/// <param name="Reason">Why it was blocked: not mapped, read-only, no IOMMU domain attached.</param>
public readonly record struct DmaFault(string Device, ulong Iova, ulong Length, bool Write, string Reason);
