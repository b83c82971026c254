// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// One IOMMU context of a <see cref="DmaSpace"/>, created by a backend: a legacy container with its groups, an
/// iommufd IOAS with its HWPTs, an sPAPR container with its windows. It holds what is common to all of them
/// (page sizes, usable IOVA ranges, the devices in it); the backend supplies the ioctls through the
/// <c>*Core</c> hooks.
/// </summary>
/// <remarks>
/// The space drives the hooks: it maps every one of its mappings into a container when the container joins
/// (<see cref="DmaSpace.Join"/>), maps and unmaps new ones into every container, and unmaps them all before it
/// releases a container that its last device left (<see cref="DmaSpace.Leave"/>). Backends call those two and
/// <see cref="AddDevice"/>/<see cref="RemoveDevice"/>; nothing else changes a container.
/// </remarks>
public abstract class DmaContainer
{
    private readonly List<AttachedDevice> _devices = [];
    private HashSet<ulong>? _skippedDeviceMemory;
    private AttachedDevice[] _deviceSnapshot = [];

    /// <summary>Creates the container's common state.</summary>
    /// <param name="backend">The backend that created it.</param>
    /// <param name="space">The space it belongs to.</param>
    /// <param name="name">Its name in messages, e.g. <c>container 5</c> or <c>IOAS 2</c>.</param>
    protected DmaContainer(IIommuBackend backend, DmaSpace space, string name)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(space);
        ArgumentException.ThrowIfNullOrEmpty(name);
        Backend = backend;
        Space = space;
        Name = name;
    }

    /// <summary>The backend that created this container.</summary>
    public IIommuBackend Backend { get; }

    /// <summary>The space this container belongs to.</summary>
    public DmaSpace Space { get; }

    /// <summary>The container's name in messages, e.g. <c>container 5</c> or <c>IOAS 2</c>.</summary>
    public string Name { get; }

    /// <summary>The IOMMU page sizes as a bitmap (bit n set: 2^n-byte pages), e.g. <c>0x40201000</c> (4 KiB, 2 MiB,
    /// 1 GiB). 4 KiB when the kernel does not say, as QEMU assumes.</summary>
    public ulong PageSizes { get; protected set; } = 4096;

    /// <summary>The smallest IOMMU page size: every mapping starts and ends on it.</summary>
    public ulong MinimumPageSize => PageSizes == 0 ? 4096 : PageSizes & (~PageSizes + 1);

    /// <summary>The IOVA ranges this container translates, as the kernel reported them.</summary>
    public IReadOnlyList<IovaRange> IovaRanges { get; protected set; } = [new IovaRange(0, ulong.MaxValue)];

    /// <summary>What this container actually offers (the kernel's answer, not just the backend's ability).</summary>
    public IommuBackendFeatures Features { get; protected set; }

    /// <summary>How many more mappings the kernel accepts in this container now (Type1's <c>DMA_AVAIL</c> capability);
    /// null when the kernel does not limit or report it.</summary>
    public virtual int? DmaMappingsAvailable => null;

    /// <summary>The devices attached through this container.</summary>
    public IReadOnlyList<AttachedDevice> Devices => Volatile.Read(ref _deviceSnapshot);

    /// <summary>True once the container was released (its last device left); a released container is never reused.</summary>
    public bool IsReleased { get; private set; }

    /// <summary>Starts dirty-page tracking of DMA writes (for live migration).</summary>
    /// <exception cref="NotSupportedException">This container has no <see cref="IommuBackendFeatures.DirtyTracking"/>.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public virtual void StartDirtyTracking() => throw NoDirtyTracking();

    /// <summary>Stops dirty-page tracking.</summary>
    /// <exception cref="NotSupportedException">This container has no <see cref="IommuBackendFeatures.DirtyTracking"/>.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public virtual void StopDirtyTracking() => throw NoDirtyTracking();

    /// <summary>Reads (and clears) the dirty bits of <paramref name="size"/> bytes at <paramref name="iova"/>: bit n
    /// of <paramref name="bitmap"/> is the page at <c>iova + n * pageSize</c>.</summary>
    /// <param name="iova">The first IOVA, within one mapping (legacy) or any mapped range (iommufd).</param>
    /// <param name="size">The number of bytes.</param>
    /// <param name="pageSize">The tracking granule, a page size of the container.</param>
    /// <param name="bitmap">The bits, at least <c>size / pageSize</c> of them, cleared by the caller.</param>
    /// <exception cref="NotSupportedException">This container has no <see cref="IommuBackendFeatures.DirtyTracking"/>.</exception>
    /// <exception cref="VfioException">The kernel refused (e.g. tracking is not started).</exception>
    public virtual void ReadDirtyBitmap(ulong iova, ulong size, ulong pageSize, Span<ulong> bitmap) => throw NoDirtyTracking();

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>Maps <paramref name="mapping"/> in the kernel. Called by the space under its lock.</summary>
    /// <param name="mapping">The mapping, page-aligned and inside <see cref="IovaRanges"/>.</param>
    /// <exception cref="VfioException">The kernel refused; nothing was mapped.</exception>
    protected internal abstract void MapCore(in DmaMapping mapping);

    /// <summary>Unmaps <paramref name="mapping"/> in the kernel. Called by the space under its lock.</summary>
    /// <param name="mapping">A mapping <see cref="MapCore"/> mapped.</param>
    /// <exception cref="VfioException">The kernel refused.</exception>
    protected internal abstract void UnmapCore(in DmaMapping mapping);

    /// <summary>Releases the container's kernel objects (groups, IOAS, HWPTs, the container fd) after its devices
    /// left and its mappings were unmapped. Called once, by <see cref="DmaSpace.Leave"/>; must not throw for
    /// ordinary kernel failures (teardown continues; log them).</summary>
    protected internal abstract void ReleaseCore();

    /// <summary>
    /// Sets the page sizes and IOVA ranges the kernel now reports (e.g. an IOAS's ranges narrow when a device with
    /// reserved regions attaches). Before the container joined its space, this only records them; after, the space
    /// recomputes its own limits at once.
    /// </summary>
    /// <param name="pageSizes">The page-size bitmap; 0 for the 4 KiB default.</param>
    /// <param name="iovaRanges">The usable ranges.</param>
    protected void SetLimits(ulong pageSizes, IReadOnlyList<IovaRange> iovaRanges)
    {
        ArgumentNullException.ThrowIfNull(iovaRanges);
        PageSizes = pageSizes == 0 ? 4096 : pageSizes;
        IovaRanges = [.. iovaRanges];
        Space.OnContainerLimitsChanged(this);
    }

    /// <summary>Adds a device attached through this container (backends call it once the device is open).</summary>
    /// <param name="device">The device.</param>
    protected void AddDevice(AttachedDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (_devices)
        {
            _devices.Add(device);
            Volatile.Write(ref _deviceSnapshot, [.. _devices]);
        }
    }

    /// <summary>Removes a device (backends call it when detaching).</summary>
    /// <param name="device">The device.</param>
    /// <returns>True when it was in this container.</returns>
    protected bool RemoveDevice(AttachedDevice device)
    {
        lock (_devices)
        {
            bool removed = _devices.Remove(device);
            Volatile.Write(ref _deviceSnapshot, [.. _devices]);
            return removed;
        }
    }

    internal void MarkSkipped(ulong iova) => (_skippedDeviceMemory ??= []).Add(iova);

    internal bool ForgetSkipped(ulong iova) => _skippedDeviceMemory is not null && _skippedDeviceMemory.Remove(iova);

    internal bool IsSkipped(ulong iova) => _skippedDeviceMemory is not null && _skippedDeviceMemory.Contains(iova);

    internal void Release()
    {
        if (IsReleased)
        {
            return;
        }
        IsReleased = true;
        _skippedDeviceMemory = null;
        ReleaseCore();
    }

    private NotSupportedException NoDirtyTracking()
        => new($"{Name} ({Backend.Name}) does not track dirty pages: the kernel offered no dirty tracking for it (Type1 needs the migration capability; iommufd a HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING on an IOMMU that supports it).");
}
