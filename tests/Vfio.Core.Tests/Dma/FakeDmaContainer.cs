// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests.Dma;

/// <summary>A container whose map and unmap hooks record calls and can be told to fail.</summary>
internal sealed class FakeDmaContainer : DmaContainer
{
    public FakeDmaContainer(IIommuBackend backend, DmaSpace space, string name = "fake container", ulong pageSizes = 4096,
        IReadOnlyList<IovaRange>? ranges = null)
        : base(backend, space, name)
    {
        PageSizes = pageSizes;
        if (ranges is not null)
        {
            IovaRanges = ranges;
        }
    }

    /// <summary>A new space named <paramref name="spaceName"/> with one fake container "c1" joined.</summary>
    public static (DmaSpace Space, FakeDmaContainer Container) JoinNewSpace(IIommuBackend backend, string spaceName = "test",
        ulong pageSizes = 4096, IReadOnlyList<IovaRange>? ranges = null)
    {
        var space = new DmaSpace(spaceName);
        var container = new FakeDmaContainer(backend, space, "c1", pageSizes, ranges);
        space.Join(container);
        return (space, container);
    }

    public List<DmaMapping> MapCalls { get; } = [];
    public List<DmaMapping> UnmapCalls { get; } = [];
    public HashSet<ulong> Live { get; } = [];
    public int ReleaseCalls { get; private set; }

    /// <summary>MapCore throws a VfioException (ENOMEM) for mappings this returns true for.</summary>
    public Func<DmaMapping, bool>? FailMap { get; set; }

    /// <summary>UnmapCore throws a VfioException (EINVAL) for mappings this returns true for.</summary>
    public Func<DmaMapping, bool>? FailUnmap { get; set; }

    public void Add(AttachedDevice device) => AddDevice(device);

    public bool Remove(AttachedDevice device) => RemoveDevice(device);

    public void ChangeLimits(ulong pageSizes, IReadOnlyList<IovaRange> ranges) => SetLimits(pageSizes, ranges);

    protected internal override void MapCore(in DmaMapping mapping)
    {
        if (FailMap?.Invoke(mapping) == true)
        {
            throw new VfioException(Errno.ENOMEM, "VFIO_IOMMU_MAP_DMA", Name);
        }
        MapCalls.Add(mapping);
        Live.Add(mapping.Iova).ShouldBeTrue();
    }

    protected internal override void UnmapCore(in DmaMapping mapping)
    {
        if (FailUnmap?.Invoke(mapping) == true)
        {
            throw new VfioException(Errno.EINVAL, "VFIO_IOMMU_UNMAP_DMA", Name);
        }
        UnmapCalls.Add(mapping);
        Live.Remove(mapping.Iova).ShouldBeTrue();
    }

    protected internal override void ReleaseCore() => ReleaseCalls++;
}
