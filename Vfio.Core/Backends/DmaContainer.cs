// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// One IOMMU context of a <see cref="DmaSpace"/>, created by a backend: a legacy container with its groups, an
/// iommufd IOAS with its HWPTs, an sPAPR container with its windows. It holds what is common to all of them
/// (page sizes, usable IOVA ranges, the devices in it); the backend supplies the ioctls through the
/// <c>*Core</c> hooks.
/// </summary>
/// <remarks>
/// <para>
/// The space drives the hooks: it maps every one of its mappings into a container when the container joins
/// (<see cref="JoinSpace"/>, or <see cref="IommuBackend"/>'s), maps and unmaps new ones into every container, and
/// unmaps them all before it releases a container that its last device left (<see cref="LeaveSpace"/>). Backends call
/// those two and <see cref="AddDevice"/>/<see cref="RemoveDevice"/>; nothing else changes a container.
/// </para>
/// <para>
/// DMA windows (sPAPR TCE v2, QEMU's <c>add_window</c>/<c>del_window</c>): a container that sets
/// <see cref="OpensDmaWindows"/> reports, besides the ranges open now (<see cref="IovaRanges"/>), those it could open
/// (<see cref="OpenableIovaRanges"/>); the space checks mappings against the latter and calls
/// <see cref="OpenDmaWindow"/> before it maps one into the container and <see cref="CloseDmaWindow"/> after it
/// unmapped one. A container without windows costs the space one flag test per map.
/// </para>
/// </remarks>
public abstract class DmaContainer
{
    private readonly List<AttachedDevice> _devices = [];
    private HashSet<ulong>? _skippedDeviceMemory;
    private AttachedDevice[] _deviceSnapshot = [];
    private IReadOnlyList<IovaRange>? _openable;

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

    /// <summary>The IOVA ranges this container translates now, as the kernel reported them (for a container with DMA
    /// windows, the windows open now).</summary>
    public IReadOnlyList<IovaRange> IovaRanges { get; protected set; } = [new IovaRange(0, ulong.MaxValue)];

    /// <summary>The IOVA ranges this container translates now or could open a DMA window over; the space checks
    /// mappings against these. The same as <see cref="IovaRanges"/> for a container without windows.</summary>
    public IReadOnlyList<IovaRange> OpenableIovaRanges => _openable ?? IovaRanges;

    /// <summary>True when the container opens host DMA windows on demand (<see cref="OpenDmaWindow"/>) rather than
    /// translating fixed ranges (sPAPR TCE v2 removes its default window and creates windows as mappings need them).</summary>
    public bool OpensDmaWindows { get; protected set; }

    /// <summary>What this container actually offers (the kernel's answer, not just the backend's ability).</summary>
    public IommuBackendFeatures Features { get; protected set; }

    /// <summary>How many more mappings the kernel accepts in this container now (Type1's <c>DMA_AVAIL</c> capability);
    /// null when the kernel does not limit or report it.</summary>
    public virtual int? DmaMappingsAvailable => null;

    /// <summary>The devices attached through this container.</summary>
    public IReadOnlyList<AttachedDevice> Devices => Volatile.Read(ref _deviceSnapshot);

    /// <summary>True once the container was released (its last device left); a released container is never reused.</summary>
    public bool IsReleased { get; private set; }

    private int _releasing;

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

    /// <summary>
    /// Makes sure a DMA window covers <paramref name="mapping"/> before the space maps it into this container (QEMU's
    /// <c>vfio_container_add_section_window</c>): reuses an open window that covers it, else creates one and adds it
    /// to <see cref="IovaRanges"/> (set the property; do not call <see cref="SetLimits(ulong, IReadOnlyList{IovaRange})"/>
    /// here). Called under the space's lock, only when <see cref="OpensDmaWindows"/> is set; the default does nothing.
    /// </summary>
    /// <param name="mapping">The mapping about to be mapped, inside <see cref="OpenableIovaRanges"/>.</param>
    /// <exception cref="VfioException">No window could be opened; the mapping then fails and nothing is mapped.</exception>
    protected internal virtual void OpenDmaWindow(in DmaMapping mapping)
    {
    }

    /// <summary>
    /// The space unmapped <paramref name="mapping"/> from this container (or mapping it failed after
    /// <see cref="OpenDmaWindow"/>): the container removes the window that covered it when no other mapping uses it
    /// (QEMU's <c>vfio_container_del_section_window</c>). Must not throw for ordinary kernel failures (log them).
    /// Not called when the container is released: <see cref="ReleaseCore"/> removes what is left.
    /// </summary>
    /// <param name="mapping">The mapping that went.</param>
    protected internal virtual void CloseDmaWindow(in DmaMapping mapping)
    {
    }

    /// <summary>Releases the container's kernel objects (groups, IOAS, HWPTs, the container fd) after its devices
    /// left and its mappings were unmapped. Called once, when the container leaves its space; must not throw for
    /// ordinary kernel failures (teardown continues; log them).</summary>
    protected internal abstract void ReleaseCore();

    /// <summary>
    /// Sets the page sizes and IOVA ranges the kernel now reports (e.g. an IOAS's ranges narrow when a device with
    /// reserved regions attaches). Before the container joined its space, this only records them; after, the space
    /// recomputes its own limits at once.
    /// </summary>
    /// <param name="pageSizes">The page-size bitmap; 0 for the 4 KiB default.</param>
    /// <param name="iovaRanges">The usable ranges.</param>
    protected void SetLimits(ulong pageSizes, IReadOnlyList<IovaRange> iovaRanges) => SetLimits(pageSizes, iovaRanges, null);

    /// <summary>
    /// As <see cref="SetLimits(ulong, IReadOnlyList{IovaRange})"/>, for a container with DMA windows: the windows open
    /// now and the ranges it could open windows over (the space checks mappings against the latter).
    /// </summary>
    /// <param name="pageSizes">The page-size bitmap; 0 for the 4 KiB default.</param>
    /// <param name="iovaRanges">The ranges open now.</param>
    /// <param name="openableRanges">The ranges open now or openable; null when they are <paramref name="iovaRanges"/>.</param>
    protected void SetLimits(ulong pageSizes, IReadOnlyList<IovaRange> iovaRanges, IReadOnlyList<IovaRange>? openableRanges)
    {
        ArgumentNullException.ThrowIfNull(iovaRanges);
        PageSizes = pageSizes == 0 ? 4096 : pageSizes;
        IovaRanges = [.. iovaRanges];
        _openable = openableRanges is null ? null : [.. openableRanges];
        Space.OnContainerLimitsChanged(this);
    }

    /// <summary>Adds this container to its space, which replays the space's mappings into it (a backend's container
    /// for the first device of a space).</summary>
    /// <exception cref="VfioDmaException">An existing mapping does not fit the container, or the kernel refused one.</exception>
    protected void JoinSpace() => Space.Join(this);

    /// <summary>Unmaps everything from this container, takes it out of its space and releases it (its last device
    /// left).</summary>
    /// <exception cref="VfioException">The kernel refused an unmap (the container is released all the same).</exception>
    protected void LeaveSpace() => Space.Leave(this);

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
        // Once, whichever thread comes first: a detach releasing the container its last device left and a space's
        // disposal finishing the same container may both get here.
        if (Interlocked.Exchange(ref _releasing, 1) != 0)
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
