// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vfio.Core;

/// <summary>
/// The memory a set of devices may reach by DMA: mappings of host memory at IOVAs, kept in every
/// <see cref="DmaContainer"/> of the space, whatever backend made it. A user-space driver allocates buffers mapped in one
/// call with <see cref="DmaBuffer.Allocate"/>, or maps memory it owns with <see cref="Map"/> (the space picks the IOVA) or
/// <see cref="MapAt"/>; a VMM adds and removes guest-memory
/// sections with <see cref="AddSection"/>/<see cref="RemoveSection"/>, as QEMU's memory listener does.
/// </summary>
/// <remarks>
/// <para>
/// A container that joins later (backends add one when they attach the first device of a space) is replayed every
/// mapping; a container whose last device detached is unmapped and released. The space's page size and IOVA ranges
/// are the strictest of its containers' (for a container with DMA windows, the ranges it has open or could open):
/// mappings are checked against them here, the same way on every backend, before the kernel sees them, and a refusal
/// is a <see cref="VfioDmaException"/> saying which rule and what to do. A container with DMA windows opens one that
/// covers a mapping before the mapping reaches it and closes it when its last mapping goes.
/// </para>
/// <para>
/// Thread-safe: calls are serialized per space. <see cref="Map"/>, <see cref="MapAt"/> and <see cref="Unmap(ulong)"/>
/// allocate nothing in the steady state (<see cref="EnsureCapacity"/> grows the book-keeping in advance); each issues
/// one map or unmap ioctl per container.
/// </para>
/// <para>
/// Disposing the space detaches every device of every container (device fds first), then unmaps and releases the
/// containers; the host memory itself belongs to the caller.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var space = new DmaSpace("driver");
/// using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci("0000:00:02.0"), space);
/// DmaMapping buffer = space.Map(hostAddress, 4096, DmaAccess.ReadWrite, dmaMask: 0x0fff_ffff);
/// // ... program the device with buffer.Iova ...
/// space.Unmap(buffer.Iova);
/// </code>
/// </example>
public sealed partial class DmaSpace : IDisposable
{
    private const string MapOperation = "map DMA";
    private const string UnmapOperation = "unmap DMA";
    private const string JoinOperation = "join DMA space";
    private static readonly IovaRange[] s_everything = [new IovaRange(0, ulong.MaxValue)];

    private readonly Lock _lock = new();
    private readonly List<DmaContainer> _containers = [];
    private readonly ILogger _logger;
    private readonly VfioMetrics? _metrics;
    private KeyValuePair<string, object?>[] _metricTags;
    private DmaContainer[] _containerSnapshot = [];
    private IovaRange[] _ranges = s_everything;
    // The IOVA allocator is also the book of mappings: each allocation keeps its mapping's host address, access and
    // kind (one index instead of an index and a dictionary; see docs/architecture.md).
    private IovaAllocator _iovas;
    private ulong _pageSize;
    private ulong _mappedBytes;
    private int _capacity;
    private bool _disposed;
    // Attaches in flight into this space (IommuBackend.AttachDevice between BeginAttach and EndAttach). Dispose closes
    // the gate first and waits for them, so no device can be attached into a space that is being torn down.
    private int _attachesInFlight;
    private bool _closing;
    private ManualResetEventSlim? _attachesDrained;

    /// <summary>Creates an empty space: no containers, no mappings.</summary>
    /// <param name="name">The space's name in messages and logs.</param>
    /// <param name="logger">Where skipped sections and teardown problems are logged; null for none.</param>
    /// <param name="metrics">Where mappings and their latency are recorded; null for none.</param>
    public DmaSpace(string name = "dma", ILogger? logger = null, VfioMetrics? metrics = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        _logger = logger ?? NullLogger.Instance;
        _metrics = metrics;
        _metricTags = MetricTags();
        _pageSize = HostPageSize;
        _iovas = new IovaAllocator(_ranges, granule: _pageSize);
        metrics?.Register(this);
    }

    /// <summary>The host's page size: the least any mapping is aligned to.</summary>
    public static ulong HostPageSize { get; } = (ulong)Environment.SystemPageSize;

    /// <summary>The space's name.</summary>
    public string Name { get; }

    /// <summary>The alignment of every mapping's IOVA, size and host address: the largest of the host page size and
    /// each container's smallest IOMMU page size.</summary>
    public ulong PageSize
    {
        get
        {
            lock (_lock)
            {
                return _pageSize;
            }
        }
    }

    /// <summary>The IOVA ranges every container of the space translates or can open a DMA window over (the intersection
    /// of their <see cref="DmaContainer.OpenableIovaRanges"/>); everything while the space has no container.</summary>
    public IReadOnlyList<IovaRange> IovaRanges
    {
        get
        {
            lock (_lock)
            {
                return _ranges;
            }
        }
    }

    /// <summary>The containers of the space, one per backend context that devices of the space joined.</summary>
    public IReadOnlyList<DmaContainer> Containers => Volatile.Read(ref _containerSnapshot);

    /// <summary>The number of mappings.</summary>
    public int MappingCount
    {
        get
        {
            lock (_lock)
            {
                return _iovas.Count;
            }
        }
    }

    /// <summary>The bytes mapped.</summary>
    public ulong MappedBytes
    {
        get
        {
            lock (_lock)
            {
                return _mappedBytes;
            }
        }
    }

    /// <summary>The fewest further mappings any container of the space accepts; null when none reports a limit.</summary>
    public int? MappingsAvailable
    {
        get
        {
            int? lowest = null;
            foreach (DmaContainer container in Containers)
            {
                if (container.DmaMappingsAvailable is int available)
                {
                    lowest = Math.Min(lowest ?? int.MaxValue, available);
                }
            }
            return lowest;
        }
    }

    /// <summary>True once the space is disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>Registers an attach into the space (for <see cref="IommuBackend.AttachDevice"/>, before it takes its
    /// backend's lock); pair with <see cref="EndAttach"/>.</summary>
    /// <exception cref="ObjectDisposedException">The space is disposed or being disposed.</exception>
    internal void BeginAttach()
    {
        lock (_lock)
        {
            if (_disposed || _closing)
            {
                throw new ObjectDisposedException(ToString(),
                    $"DMA space '{Name}' is disposed (or being disposed), so no device can be attached into it; attach into a live space (create a new one).");
            }
            _attachesInFlight++;
        }
    }

    /// <summary>Ends an attach registered with <see cref="BeginAttach"/>, letting a waiting disposal go on.</summary>
    internal void EndAttach()
    {
        lock (_lock)
        {
            if (--_attachesInFlight == 0)
            {
                _attachesDrained?.Set();
            }
        }
    }

    /// <summary>Grows the book-keeping so that up to <paramref name="mappings"/> live mappings need no further memory.</summary>
    /// <param name="mappings">The number of mappings to provide for.</param>
    public void EnsureCapacity(int mappings)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(mappings);
        lock (_lock)
        {
            _capacity = Math.Max(_capacity, mappings);
            _iovas.EnsureCapacity(mappings);
        }
    }

    /// <summary>Maps <paramref name="size"/> bytes at <paramref name="hostAddress"/> at the lowest free IOVA that ends at
    /// or below <paramref name="dmaMask"/>, in every container of the space.</summary>
    /// <param name="hostAddress">The memory, aligned to <see cref="PageSize"/>; it must stay allocated until unmapped.</param>
    /// <param name="size">The number of bytes, a non-zero multiple of <see cref="PageSize"/>.</param>
    /// <param name="access">Which way devices may move data.</param>
    /// <param name="dmaMask">The highest IOVA the device can reach, e.g. <c>0x0fff_ffff</c> for edu's 28-bit mask.</param>
    /// <returns>The mapping; its <see cref="DmaMapping.Iova"/> is what the device is given.</returns>
    /// <exception cref="VfioDmaException">Misaligned, no free IOVA block fits, or the kernel refused (nothing stays
    /// mapped in any container).</exception>
    /// <exception cref="ObjectDisposedException">The space is disposed.</exception>
    public DmaMapping Map(nint hostAddress, ulong size, DmaAccess access = DmaAccess.ReadWrite, ulong dmaMask = ulong.MaxValue)
    {
        ValidateAccess(access);
        long start = _metrics is null ? 0 : Stopwatch.GetTimestamp();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            CheckAligned(0, hostAddress, size);
            if (!_iovas.TryAllocate(size, dmaMask, new DmaMappingData(hostAddress, access, DmaSectionKind.Ram), out ulong iova))
            {
                throw new VfioDmaException(DmaMappingFailure.NoFreeIova, MapOperation, Name,
                    string.Create(CultureInfo.InvariantCulture,
                        $"no free IOVA block of 0x{size:x} bytes lies at or below the DMA mask 0x{dmaMask:x} ({_iovas.Count} mappings, ranges {FormatRanges(_ranges)})"),
                    "Unmap what is no longer needed, map less at once, or raise the DMA mask if the device can address more.");
            }
            var mapping = new DmaMapping(iova, size, hostAddress, access, DmaSectionKind.Ram);
            Commit(mapping, start);
            return mapping;
        }
    }

    /// <summary>Maps <paramref name="size"/> bytes at <paramref name="hostAddress"/> at the fixed IOVA
    /// <paramref name="iova"/>, in every container of the space.</summary>
    /// <param name="iova">The IOVA, aligned to <see cref="PageSize"/>.</param>
    /// <param name="hostAddress">The memory, aligned to <see cref="PageSize"/>; it must stay allocated until unmapped.</param>
    /// <param name="size">The number of bytes, a non-zero multiple of <see cref="PageSize"/>.</param>
    /// <param name="access">Which way devices may move data.</param>
    /// <param name="kind">What the memory is; device memory a container cannot map is skipped there with a warning.</param>
    /// <returns>The mapping.</returns>
    /// <exception cref="VfioDmaException">Misaligned, outside <see cref="IovaRanges"/>, overlapping a mapping, or the
    /// kernel refused (nothing stays mapped in any container).</exception>
    /// <exception cref="ObjectDisposedException">The space is disposed.</exception>
    public DmaMapping MapAt(ulong iova, nint hostAddress, ulong size, DmaAccess access = DmaAccess.ReadWrite,
        DmaSectionKind kind = DmaSectionKind.Ram)
    {
        ValidateAccess(access);
        long start = _metrics is null ? 0 : Stopwatch.GetTimestamp();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            CheckAligned(iova, hostAddress, size);
            ClaimFixed(iova, size, new DmaMappingData(hostAddress, access, kind));
            var mapping = new DmaMapping(iova, size, hostAddress, access, kind);
            Commit(mapping, start);
            return mapping;
        }
    }

    /// <summary>
    /// Adds a section of guest memory the way QEMU's memory listener does: the range is shrunk inward to
    /// <see cref="PageSize"/> (the start rounded up, the end down, the host address moved along), and a section
    /// with no whole page left is skipped. Otherwise as <see cref="MapAt"/>.
    /// </summary>
    /// <param name="iova">The section's IOVA (its guest-physical address).</param>
    /// <param name="hostAddress">The host address of the section's first byte.</param>
    /// <param name="size">The section's size in bytes.</param>
    /// <param name="access">Which way devices may move data (read-only for ROM sections).</param>
    /// <param name="kind">RAM, or device memory (a peer BAR) that a container may skip.</param>
    /// <param name="mapping">The mapping made (the aligned part), or the default when the section was skipped.</param>
    /// <returns>True when a mapping was made; false when no whole page was left.</returns>
    /// <exception cref="VfioDmaException">As for <see cref="MapAt"/>.</exception>
    public bool AddSection(ulong iova, nint hostAddress, ulong size, DmaAccess access, DmaSectionKind kind, out DmaMapping mapping)
    {
        ulong page = PageSize;
        (ulong first, ulong end) = ShrinkToPages(iova, size, page);
        if (end <= first || ((ulong)hostAddress + (first - iova)) % page != 0)
        {
            LogSectionSkipped(_logger, Name, iova, size, page);
            mapping = default;
            return false;
        }
        mapping = MapAt(first, hostAddress + (nint)(first - iova), end - first, access, kind);
        return true;
    }

    /// <summary>Removes the section <see cref="AddSection"/> added for the same range (shrunk the same way).</summary>
    /// <param name="iova">The section's IOVA.</param>
    /// <param name="size">The section's size in bytes.</param>
    /// <returns>True when a mapping was removed; false when the section had been skipped.</returns>
    /// <exception cref="VfioDmaException">The aligned part is not a mapping of this space, or the kernel refused.</exception>
    public bool RemoveSection(ulong iova, ulong size)
    {
        (ulong first, ulong end) = ShrinkToPages(iova, size, PageSize);
        if (end <= first)
        {
            return false;
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // A section is removed whole: a part of a mapping (or a range larger than it) is not what was added, and
            // unmapping the whole mapping for it would take away DMA the caller still means to have.
            if (_iovas.TryGetMapping(first, out DmaMapping mapping) && mapping.Size != end - first)
            {
                throw new VfioDmaException(DmaMappingFailure.NotMapped, UnmapOperation, Name,
                    string.Create(CultureInfo.InvariantCulture, $"the section at IOVA 0x{first:x} maps 0x{mapping.Size:x} bytes, not the 0x{end - first:x} bytes asked to be removed"),
                    "Remove a section with the range it was added with; VFIO unmaps a mapping whole, not a part of it.");
            }
            Unmap(first);
        }
        return true;
    }

    /// <summary>Unmaps the mapping that starts at <paramref name="iova"/> from every container of the space.</summary>
    /// <param name="iova">The mapping's IOVA, as <see cref="Map"/> or <see cref="MapAt"/> returned it.</param>
    /// <exception cref="VfioDmaException">No mapping starts there, or a container's kernel refused (the mapping stays
    /// in the book so the call can be repeated).</exception>
    /// <exception cref="ObjectDisposedException">The space is disposed.</exception>
    public void Unmap(ulong iova)
    {
        long start = _metrics is null ? 0 : Stopwatch.GetTimestamp();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // The mapping stays in the book until every container unmapped it (so a refused call can be repeated).
            if (!_iovas.TryGetMapping(iova, out DmaMapping mapping))
            {
                throw new VfioDmaException(DmaMappingFailure.NotMapped, UnmapOperation, Name,
                    string.Create(CultureInfo.InvariantCulture, $"no mapping starts at IOVA 0x{iova:x}"),
                    "Unmap with the IOVA a map call returned, once per mapping; a range is unmapped whole.");
            }
            UnmapFromAllContainers(mapping);
            _iovas.Free(iova);
            _mappedBytes -= mapping.Size;
            _metrics?.RecordUnmap(mapping.Size, start, _metricTags);
        }
    }

    /// <summary>Unmaps <paramref name="mapping"/> (<see cref="Unmap(ulong)"/> of its IOVA).</summary>
    /// <param name="mapping">A mapping of this space.</param>
    public void Unmap(in DmaMapping mapping) => Unmap(mapping.Iova);

    /// <summary>Unmaps every mapping of the space.</summary>
    /// <exception cref="VfioDmaException">A container's kernel refused; the mappings not yet unmapped stay.</exception>
    public void UnmapAll()
    {
        foreach (DmaMapping mapping in EnumerateMappings())
        {
            Unmap(mapping.Iova);
        }
    }

    /// <summary>Finds the mapping that contains <paramref name="iova"/>.</summary>
    /// <param name="iova">Any IOVA.</param>
    /// <param name="mapping">The mapping, or the default.</param>
    /// <returns>True when a mapping contains it.</returns>
    public bool TryFind(ulong iova, out DmaMapping mapping)
    {
        lock (_lock)
        {
            return _iovas.TryFindMapping(iova, out mapping);
        }
    }

    /// <summary>The mappings of the space, ordered by IOVA (a snapshot).</summary>
    /// <returns>The mappings.</returns>
    public IReadOnlyList<DmaMapping> EnumerateMappings()
    {
        lock (_lock)
        {
            return _iovas.Mappings();
        }
    }

    /// <summary>
    /// Adds <paramref name="container"/> to the space and maps every existing mapping into it (for backends, when they
    /// create a container for the first device of this space). The space's page size and IOVA ranges narrow to
    /// include the container's.
    /// </summary>
    /// <param name="container">A new container of this space.</param>
    /// <exception cref="VfioDmaException">An existing mapping is misaligned for, or outside the ranges of, the
    /// container, or the kernel refused to map one (the container then holds none of them and is not added).</exception>
    /// <exception cref="ArgumentException">The container belongs to another space, or already joined.</exception>
    internal void Join(DmaContainer container)
    {
        ArgumentNullException.ThrowIfNull(container);
        if (!ReferenceEquals(container.Space, this))
        {
            throw new ArgumentException($"{container.Name} belongs to DMA space '{container.Space.Name}', not '{Name}'.", nameof(container));
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_containers.Contains(container) || container.IsReleased)
            {
                throw new ArgumentException($"{container.Name} already joined DMA space '{Name}' (or was released).", nameof(container));
            }
            ulong pageSize = Math.Max(_pageSize, container.MinimumPageSize);
            IovaRange[] ranges = Intersect(_ranges, container.OpenableIovaRanges);
            if (ranges.Length == 0)
            {
                throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, JoinOperation, container.Name,
                    $"the container's IOVA ranges {FormatRanges(container.OpenableIovaRanges)} share nothing with those of DMA space '{Name}' ({FormatRanges(_ranges)})",
                    "Attach the device to a DMA space of its own.");
            }
            List<DmaMapping> sorted = _iovas.Mappings();
            foreach (DmaMapping mapping in sorted)
            {
                if (mapping.Iova % pageSize != 0 || mapping.Size % pageSize != 0 || (ulong)mapping.HostAddress % pageSize != 0)
                {
                    throw new VfioDmaException(DmaMappingFailure.Misaligned, JoinOperation, container.Name,
                        $"the mapping {mapping.Range} of DMA space '{Name}' is not aligned to the container's page size 0x{pageSize:x}",
                        "Map with the container's page size (attach devices before mapping, or use its page size from the start).");
                }
                if (!Inside(ranges, mapping.Range))
                {
                    throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, JoinOperation, container.Name,
                        $"the mapping {mapping.Range} of DMA space '{Name}' lies outside the IOVA ranges {FormatRanges(container.OpenableIovaRanges)} of the container",
                        "Attach the device to another DMA space, or unmap the mapping and map it inside the ranges the device can reach.");
                }
            }
            int mapped = 0;
            try
            {
                for (; mapped < sorted.Count; mapped++)
                {
                    MapIn(container, sorted[mapped]);
                }
            }
            catch
            {
                for (int i = mapped - 1; i >= 0; i--)
                {
                    TryUnmapFrom(container, sorted[i]);
                }
                throw;
            }
            _containers.Add(container);
            Volatile.Write(ref _containerSnapshot, [.. _containers]);
            _metricTags = MetricTags();
            if (pageSize != _pageSize || !ranges.AsSpan().SequenceEqual(_ranges))
            {
                _pageSize = pageSize;
                _ranges = ranges;
                RebuildAllocator();
            }
        }
    }

    /// <summary>
    /// Unmaps every mapping from <paramref name="container"/>, removes it from the space and releases it (for
    /// backends, when the container's last device detached). The space keeps its mappings; its page size and IOVA
    /// ranges widen to those of the remaining containers.
    /// </summary>
    /// <param name="container">A container of this space with no devices left.</param>
    /// <exception cref="VfioException">The kernel refused an unmap; the container is released all the same (the kernel
    /// drops what is left with it).</exception>
    internal void Leave(DmaContainer container)
    {
        ArgumentNullException.ThrowIfNull(container);
        Exception? first = null;
        lock (_lock)
        {
            if (!_containers.Remove(container))
            {
                container.Release();
                return;
            }
            Volatile.Write(ref _containerSnapshot, [.. _containers]);
            _metricTags = MetricTags();
            foreach (DmaMapping mapping in _iovas.Mappings())
            {
                if (container.ForgetSkipped(mapping.Iova))
                {
                    continue;
                }
                try
                {
                    container.UnmapCore(mapping);
                }
                catch (VfioException e)
                {
                    first ??= e;
                    LogUnmapFailedOnLeave(_logger, container.Name, mapping.Iova, mapping.Size, e);
                }
            }
            RecomputeLimits();
        }
        container.Release();
        if (first is not null)
        {
            throw new VfioException(UnmapOperation, container.Name,
                "a mapping could not be unmapped while the container was released; the kernel dropped it with the container", null);
        }
    }

    internal void OnContainerLimitsChanged(DmaContainer container)
    {
        lock (_lock)
        {
            if (_containers.Contains(container))
            {
                RecomputeLimits();
            }
        }
    }

    /// <summary>Detaches every device of every container (their fds first), which unmaps and releases the containers.</summary>
    /// <remarks>An attach into the space that is in flight when disposal starts completes first and its device is then
    /// detached with the others; an attach that starts later fails with <see cref="ObjectDisposedException"/>.</remarks>
    public void Dispose()
    {
        ManualResetEventSlim? drained = null;
        lock (_lock)
        {
            if (_disposed || _closing)
            {
                return;
            }
            _closing = true;
            if (_attachesInFlight > 0)
            {
                drained = _attachesDrained = new ManualResetEventSlim(false);
            }
        }
        // An attach is a bounded run of system calls under its backend's lock, which this thread does not hold.
        drained?.Wait();
        drained?.Dispose();
        foreach (DmaContainer container in Containers)
        {
            foreach (AttachedDevice device in container.Devices)
            {
                try
                {
                    device.Dispose();
                }
                catch (VfioException e)
                {
                    LogDetachFailedOnDispose(_logger, device.Name, Name, e);
                }
            }
            if (!container.IsReleased)
            {
                try
                {
                    // Through the backend's lock: another thread's detach may be releasing the same container, and an
                    // attach reusing its groups must not see it half released (before, an attach could find a group whose
                    // container was gone: NullReferenceException).
                    if (container.Backend is IommuBackend backend)
                    {
                        backend.LeaveLocked(container);
                    }
                    else
                    {
                        Leave(container);
                    }
                }
                catch (VfioException e)
                {
                    LogDetachFailedOnDispose(_logger, container.Name, Name, e);
                }
            }
        }
        lock (_lock)
        {
            _disposed = true;
            _iovas = new IovaAllocator(_ranges.Length == 0 ? s_everything : _ranges, granule: _pageSize);
            _mappedBytes = 0;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"DMA space '{Name}'";

    /// <summary>The whole pages of [iova, iova + size): the first page start and the end (exclusive, as UInt128 would
    /// be; a range reaching 2^64 ends at the last page start plus one page, capped). Empty when end &lt;= first.</summary>
    private static (ulong First, ulong End) ShrinkToPages(ulong iova, ulong size, ulong page)
    {
        UInt128 end = (UInt128)iova + size;
        UInt128 first = ((UInt128)iova + page - 1) / page * page;
        end = end / page * page;
        if (end <= first)
        {
            return (0, 0);
        }
        // A section that reaches the top of the 64-bit space keeps its last page out (the end must fit a ulong).
        return ((ulong)first, end > ulong.MaxValue ? ulong.MaxValue - (page - 1) : (ulong)end);
    }

    private static void ValidateAccess(DmaAccess access)
    {
        if (access is not (DmaAccess.Read or DmaAccess.Write or DmaAccess.ReadWrite))
        {
            throw new ArgumentOutOfRangeException(nameof(access), access, "A mapping is readable, writable or both.");
        }
    }

    private void CheckAligned(ulong iova, nint hostAddress, ulong size)
    {
        ulong page = _pageSize;
        // The page size is a power of two: one mask test instead of three divisions (~10 ns of a map).
        if (size == 0 || ((size | iova | (ulong)hostAddress) & (page - 1)) != 0)
        {
            throw new VfioDmaException(DmaMappingFailure.Misaligned, MapOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"IOVA 0x{iova:x}, host address 0x{(ulong)hostAddress:x} and size 0x{size:x} must be non-zero multiples of the page size 0x{page:x}"),
                "Allocate DMA memory with DmaBuffer.Allocate (page-aligned, mapped in one call), or map page-aligned memory (mmap) in whole pages.");
        }
        if (iova > ulong.MaxValue - (size - 1))
        {
            throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, MapOperation, Name,
                string.Create(CultureInfo.InvariantCulture, $"IOVA 0x{iova:x} + size 0x{size:x} runs past the end of the 64-bit IOVA space"),
                "Map at a lower IOVA.");
        }
    }

    private void ClaimFixed(ulong iova, ulong size, in DmaMappingData data)
    {
        var range = IovaRange.FromStartSize(iova, size);
        if (!Inside(_ranges, range))
        {
            throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, MapOperation, Name,
                $"{range} lies outside the IOVA ranges {FormatRanges(_ranges)} that every device of the space can reach",
                "Map inside the reported ranges (DmaSpace.IovaRanges), or let the space choose the IOVA with Map.");
        }
        if (!_iovas.TryClaim(iova, size, data))
        {
            string other = "another mapping";
            foreach (DmaMapping existing in _iovas.Mappings())
            {
                if (existing.Range.Overlaps(range))
                {
                    other = $"the mapping {existing.Range}";
                    break;
                }
            }
            throw new VfioDmaException(DmaMappingFailure.Overlap, MapOperation, Name,
                $"{range} overlaps {other}",
                "Unmap the existing mapping first, or map at a free IOVA (Map chooses one).");
        }
    }

    /// <summary>Maps a mapping whose IOVA is claimed in every container and records it; on failure nothing stays
    /// mapped and the IOVA is free again.</summary>
    private void Commit(in DmaMapping mapping, long start)
    {
        // A hot path: without a listener the span costs one check.
        Activity? activity = VfioTelemetry.ActivitySource.HasListeners() ? StartMapActivity(mapping) : null;
        try
        {
            MapInAllContainers(mapping);
        }
        catch (Exception e)
        {
            _iovas.Free(mapping.Iova);
            VfioTelemetry.Fail(activity, e);
            activity?.Dispose();
            throw;
        }
        _mappedBytes += mapping.Size;
        _metrics?.RecordMap(mapping.Size, start, _metricTags);
        activity?.Dispose();
    }

    private Activity? StartMapActivity(in DmaMapping mapping)
    {
        Activity? activity = VfioTelemetry.ActivitySource.StartActivity("vfio.dma.map", ActivityKind.Internal);
        activity?.SetTag(VfioTelemetry.DmaSpaceAttribute, Name);
        activity?.SetTag(VfioTelemetry.BackendAttribute, _metricTags[1].Value);
        activity?.SetTag("vfio.dma.iova", mapping.Iova);
        activity?.SetTag("vfio.dma.size", mapping.Size);
        return activity;
    }

    /// <summary>The DMA instruments' tags: the space and the backends of its containers ("none" before the first).</summary>
    private KeyValuePair<string, object?>[] MetricTags()
    {
        string backends = _containers.Count == 0 ? "none" : string.Join(',', _containers.Select(static c => c.Backend.Name).Distinct().Order(StringComparer.Ordinal));
        return [new(VfioTelemetry.DmaSpaceAttribute, Name), new(VfioTelemetry.BackendAttribute, backends)];
    }

    private void MapInAllContainers(in DmaMapping mapping)
    {
        // The snapshot array equals _containers under the lock (both change together) and is cheaper to walk.
        DmaContainer[] containers = _containerSnapshot;
        int done = 0;
        try
        {
            for (; done < containers.Length; done++)
            {
                MapIn(containers[done], mapping);
            }
        }
        catch
        {
            for (int i = done - 1; i >= 0; i--)
            {
                TryUnmapFrom(containers[i], mapping);
            }
            throw;
        }
    }

    private void MapIn(DmaContainer container, in DmaMapping mapping)
    {
        if (mapping.Kind == DmaSectionKind.DeviceMemory)
        {
            try
            {
                MapThroughWindow(container, mapping);
            }
            catch (VfioException e)
            {
                // As QEMU does for ram_device sections: peer-to-peer DMA to this BAR will fault, nothing else breaks.
                LogDeviceMemorySkipped(_logger, container.Name, mapping.Iova, mapping.Size, e);
                container.MarkSkipped(mapping.Iova);
            }
            return;
        }
        MapThroughWindow(container, mapping);
    }

    /// <summary>Maps into one container; a container with DMA windows first opens (or reuses) a window that covers the
    /// mapping, and closes it again when the map fails. One flag test for containers without windows.</summary>
    private static void MapThroughWindow(DmaContainer container, in DmaMapping mapping)
    {
        if (!container.OpensDmaWindows)
        {
            container.MapCore(mapping);
            return;
        }
        container.OpenDmaWindow(mapping);
        try
        {
            container.MapCore(mapping);
        }
        catch
        {
            container.CloseDmaWindow(mapping);
            throw;
        }
    }

    /// <summary>Unmaps from one container; a container with DMA windows then closes the window when this was its last
    /// mapping (the container counts).</summary>
    private static void UnmapThroughWindow(DmaContainer container, in DmaMapping mapping)
    {
        container.UnmapCore(mapping);
        if (container.OpensDmaWindows)
        {
            container.CloseDmaWindow(mapping);
        }
    }

    private void TryUnmapFrom(DmaContainer container, in DmaMapping mapping)
    {
        if (container.ForgetSkipped(mapping.Iova))
        {
            return;
        }
        try
        {
            UnmapThroughWindow(container, mapping);
        }
        catch (VfioException e)
        {
            LogUnmapFailedOnLeave(_logger, container.Name, mapping.Iova, mapping.Size, e);
        }
    }

    private void UnmapFromAllContainers(in DmaMapping mapping)
    {
        VfioException? failure = null;
        DmaContainer[] containers = _containerSnapshot;
        // Only device memory is ever skipped by a container (MapIn): RAM needs no look-up in the skipped sets.
        bool deviceMemory = mapping.Kind == DmaSectionKind.DeviceMemory;
        for (int i = 0; i < containers.Length; i++)
        {
            DmaContainer container = containers[i];
            if (deviceMemory && container.IsSkipped(mapping.Iova))
            {
                continue;
            }
            try
            {
                UnmapThroughWindow(container, mapping);
            }
            catch (VfioException e)
            {
                failure ??= e;
            }
        }
        if (failure is VfioDmaException typed)
        {
            // The container already said which rule (e.g. iommufd's ENOENT as NotMapped): keep its answer.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(typed);
        }
        if (failure is not null)
        {
            throw new VfioDmaException(DmaMappingFailure.Kernel, failure.Operation, failure.ObjectName ?? Name,
                $"unmapping {mapping.Range} of DMA space '{Name}' failed", failure.Hint, failure.Errno, failure);
        }
        for (int i = 0; deviceMemory && i < containers.Length; i++)
        {
            containers[i].ForgetSkipped(mapping.Iova);
        }
    }

    private void RecomputeLimits()
    {
        ulong pageSize = HostPageSize;
        IovaRange[] ranges = s_everything;
        foreach (DmaContainer container in _containers)
        {
            pageSize = Math.Max(pageSize, container.MinimumPageSize);
            ranges = Intersect(ranges, container.OpenableIovaRanges);
        }
        if (pageSize != _pageSize || !ranges.AsSpan().SequenceEqual(_ranges))
        {
            _pageSize = pageSize;
            _ranges = ranges;
            RebuildAllocator();
        }
    }

    private void RebuildAllocator()
    {
        var iovas = new IovaAllocator(_ranges.Length == 0 ? s_everything : _ranges, granule: _pageSize);
        iovas.EnsureCapacity(Math.Max(_capacity, _iovas.Count));
        foreach (DmaMapping mapping in _iovas.Mappings())
        {
            if (!iovas.TryClaim(mapping.Iova, mapping.Size, new DmaMappingData(mapping.HostAddress, mapping.Access, mapping.Kind)))
            {
                iovas.Claim(mapping.Iova, mapping.Size);   // throws, naming the conflict
            }
        }
        _iovas = iovas;
    }

    private static bool Inside(IovaRange[] ranges, IovaRange range)
    {
        foreach (IovaRange r in ranges)
        {
            if (r.Contains(range))
            {
                return true;
            }
        }
        return false;
    }

    private static IovaRange[] Intersect(IReadOnlyList<IovaRange> a, IReadOnlyList<IovaRange> b)
    {
        var result = new List<IovaRange>();
        foreach (IovaRange x in a)
        {
            foreach (IovaRange y in b)
            {
                ulong start = Math.Max(x.Start, y.Start);
                ulong last = Math.Min(x.Last, y.Last);
                if (start <= last)
                {
                    result.Add(new IovaRange(start, last));
                }
            }
        }
        result.Sort(static (p, q) => p.Start.CompareTo(q.Start));
        return [.. result];
    }

    private static string FormatRanges(IReadOnlyList<IovaRange> ranges) => ranges.Count == 0 ? "(none)" : string.Join(", ", ranges);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "DMA space '{Space}': section at IOVA 0x{Iova:x} of 0x{Size:x} bytes holds no whole page of 0x{PageSize:x} bytes; skipped")]
    private static partial void LogSectionSkipped(ILogger logger, string space, ulong iova, ulong size, ulong pageSize);

    [LoggerMessage(EventId = 122, Level = LogLevel.Warning, Message = "{Container}: device memory at IOVA 0x{Iova:x} of 0x{Size:x} bytes could not be mapped; peer-to-peer DMA to it will fault")]
    private static partial void LogDeviceMemorySkipped(ILogger logger, string container, ulong iova, ulong size, Exception exception);

    [LoggerMessage(EventId = 123, Level = LogLevel.Warning, Message = "{Container}: unmapping IOVA 0x{Iova:x} of 0x{Size:x} bytes failed during teardown")]
    private static partial void LogUnmapFailedOnLeave(ILogger logger, string container, ulong iova, ulong size, Exception exception);

    [LoggerMessage(EventId = 124, Level = LogLevel.Warning, Message = "Detaching {Device} while disposing DMA space '{Space}' failed")]
    private static partial void LogDetachFailedOnDispose(ILogger logger, string device, string space, Exception exception);
}
