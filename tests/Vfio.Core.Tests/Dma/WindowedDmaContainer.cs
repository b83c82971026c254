// SPDX-License-Identifier: MIT
using Vfio.Core.Interop;

namespace Vfio.Core.Tests.Dma;

/// <summary>
/// A container with DMA windows, as sPAPR TCE v2 has: nothing is open until a mapping needs it; windows are 1 GiB blocks
/// of the first 4 GiB, at most <c>maxWindows</c> at a time (the kernel's ENOSPC beyond), each removed with its last
/// mapping. Records every hook call in order.
/// </summary>
internal sealed class WindowedDmaContainer : DmaContainer
{
    internal const ulong WindowSize = 1UL << 30;

    private readonly Dictionary<ulong, int> _windows = [];
    private readonly int _maxWindows;

    public WindowedDmaContainer(IIommuBackend backend, DmaSpace space, int maxWindows = 2)
        : base(backend, space, "windowed container")
    {
        _maxWindows = maxWindows;
        OpensDmaWindows = true;
        SetLimits(4096, [], [new IovaRange(0, (4 * WindowSize) - 1)]);
    }

    public List<string> Events { get; } = [];

    /// <summary>MapCore throws a VfioException (EIO) for mappings this returns true for.</summary>
    public Func<DmaMapping, bool>? FailMap { get; set; }

    public void Join() => JoinSpace();

    protected internal override void OpenDmaWindow(in DmaMapping mapping)
    {
        ulong start = mapping.Iova / WindowSize * WindowSize;
        if (_windows.TryGetValue(start, out int users))
        {
            _windows[start] = users + 1;
            return;
        }
        if (_windows.Count == _maxWindows)
        {
            throw new VfioException(Errno.ENOSPC, "VFIO_IOMMU_SPAPR_TCE_CREATE", Name);
        }
        _windows[start] = 1;
        Events.Add($"open 0x{start:x}");
        UpdateRanges();
    }

    protected internal override void CloseDmaWindow(in DmaMapping mapping)
    {
        ulong start = mapping.Iova / WindowSize * WindowSize;
        int users = _windows[start] - 1;
        if (users > 0)
        {
            _windows[start] = users;
            return;
        }
        _windows.Remove(start);
        Events.Add($"close 0x{start:x}");
        UpdateRanges();
    }

    protected internal override void MapCore(in DmaMapping mapping)
    {
        if (FailMap?.Invoke(mapping) == true)
        {
            throw new VfioException(Errno.EIO, "VFIO_IOMMU_MAP_DMA", Name);
        }
        Events.Add($"map 0x{mapping.Iova:x}");
    }

    protected internal override void UnmapCore(in DmaMapping mapping) => Events.Add($"unmap 0x{mapping.Iova:x}");

    protected internal override void ReleaseCore() => Events.Add("release");

    private void UpdateRanges() => IovaRanges = [.. _windows.Keys.Order().Select(static s => new IovaRange(s, s + WindowSize - 1))];
}
