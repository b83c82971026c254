// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.IommuFd;

/// <summary>
/// The iommufd container of one <see cref="DmaSpace"/>: an IOAS (<c>IOMMU_IOAS_ALLOC</c>) of the backend's iommufd and
/// the hardware page tables (HWPTs) its devices are attached to. Mappings are <c>IOMMU_IOAS_MAP</c> at fixed IOVAs; the
/// IOVA ranges and alignment come from <c>IOMMU_IOAS_IOVA_RANGES</c> and narrow as devices with reserved regions
/// attach.
/// </summary>
/// <remarks>
/// <para>
/// Dirty tracking is offered when every HWPT of the IOAS was allocated with <c>IOMMU_HWPT_ALLOC_DIRTY_TRACKING</c>
/// (the backend does so when the IOMMU reports <c>IOMMU_HW_CAP_DIRTY_TRACKING</c>).
/// </para>
/// <para>
/// No kernel-chosen-IOVA map is offered here: the space's IOVA allocator owns the IOVAs of every container, and a
/// mapping the kernel placed in one IOAS would be unknown to the space and to its other containers.
/// </para>
/// </remarks>
public sealed class IommuFdContainer : DmaContainer
{
    private const int MaxRangeAttempts = 4;

    private readonly IommuFdBackend _backend;
    private readonly IKernel _kernel;
    private readonly SafeFileHandle _iommufd;
    private readonly ILogger _logger;
    private readonly List<Hwpt> _hwpts = [];

    internal IommuFdContainer(IommuFdBackend backend, DmaSpace space, IKernel kernel, SafeFileHandle iommufd, uint ioasId, ILogger logger)
        : base(backend, space, "IOAS " + ioasId.ToString(CultureInfo.InvariantCulture))
    {
        _backend = backend;
        _kernel = kernel;
        _iommufd = iommufd;
        _logger = logger;
        IoasId = ioasId;
        Features = IommuBackendFeatures.HotResetByDeviceIds | IommuBackendFeatures.PassedFds;
    }

    /// <summary>The IOAS id in the backend's iommufd.</summary>
    public uint IoasId { get; }

    /// <summary>The HWPT ids the IOAS's devices are attached to (automatic and allocated ones), oldest first.</summary>
    public IReadOnlyList<uint> HwptIds
    {
        get
        {
            lock (_hwpts)
            {
                var ids = new uint[_hwpts.Count];
                for (int i = 0; i < ids.Length; i++)
                {
                    ids[i] = _hwpts[i].Id;
                }
                return ids;
            }
        }
    }

    /// <summary>The IOVA and length alignment <c>IOMMU_IOAS_IOVA_RANGES</c> last reported (<c>out_iova_alignment</c>).</summary>
    public ulong IovaAlignment { get; private set; } = 1;

    /// <summary>What <c>IOMMU_GET_HW_INFO</c> reported for the IOMMU of the container's first device; null before one
    /// attached.</summary>
    public IommuHardwareInfo? IommuHardwareInfo { get; internal set; }

    /// <inheritdoc/>
    public override void StartDirtyTracking() => SetDirtyTracking(true);

    /// <inheritdoc/>
    public override void StopDirtyTracking() => SetDirtyTracking(false);

    /// <inheritdoc/>
    public override unsafe void ReadDirtyBitmap(ulong iova, ulong size, ulong pageSize, Span<ulong> bitmap)
    {
        RequireDirtyTracking();
        if (pageSize == 0 || (pageSize & (pageSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(pageSize), pageSize, "The tracking granule is a power of two.");
        }
        if (size == 0 || size % pageSize != 0 || iova % pageSize != 0)
        {
            throw new ArgumentException("The IOVA and size must be non-zero multiples of the page size.", nameof(size));
        }
        ulong bits = size / pageSize;
        if ((ulong)bitmap.Length < (bits + 63) / 64)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The bitmap needs {(bits + 63) / 64} words for {bits} pages."), nameof(bitmap));
        }
        fixed (ulong* data = bitmap)
        {
            foreach (uint hwpt in DirtyHwpts())
            {
                var get = new iommu_hwpt_get_dirty_bitmap
                {
                    size = (uint)Unsafe.SizeOf<iommu_hwpt_get_dirty_bitmap>(),
                    hwpt_id = hwpt,
                    iova = iova,
                    length = size,
                    page_size = pageSize,
                    data = (ulong)data,
                };
                int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, &get);
                if (rc < 0)
                {
                    throw new VfioException((Errno)(-rc), "IOMMU_HWPT_GET_DIRTY_BITMAP", HwptName(hwpt));
                }
            }
        }
    }

    /// <inheritdoc/>
    protected override unsafe void MapCore(in DmaMapping mapping)
    {
        uint flags = IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA;
        if ((mapping.Access & DmaAccess.Read) != 0)
        {
            flags |= IommuUapi.IOMMU_IOAS_MAP_READABLE;
        }
        if ((mapping.Access & DmaAccess.Write) != 0)
        {
            flags |= IommuUapi.IOMMU_IOAS_MAP_WRITEABLE;
        }
        var map = new iommu_ioas_map
        {
            size = (uint)Unsafe.SizeOf<iommu_ioas_map>(),
            flags = flags,
            ioas_id = IoasId,
            user_va = (ulong)mapping.HostAddress,
            length = mapping.Size,
            iova = mapping.Iova,
        };
        int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_IOAS_MAP, &map);
        if (rc < 0)
        {
            ThrowMapFailed(rc, mapping);
        }
    }

    /// <inheritdoc/>
    /// <remarks><c>ENOENT</c> (nothing mapped in the range) means the IOAS lost a mapping the space still has:
    /// something else unmapped it through this iommufd. That is reported as a <see cref="VfioDmaException"/> with
    /// <see cref="DmaMappingFailure.NotMapped"/> and errno <c>ENOENT</c>, not hidden (QEMU ignores it for its vIOMMU's
    /// redundant unmaps; the space never issues one).</remarks>
    protected override unsafe void UnmapCore(in DmaMapping mapping)
    {
        var unmap = new iommu_ioas_unmap { size = (uint)Unsafe.SizeOf<iommu_ioas_unmap>(), ioas_id = IoasId, iova = mapping.Iova, length = mapping.Size };
        int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_IOAS_UNMAP, &unmap);
        if (rc < 0)
        {
            ThrowUnmapFailed(rc, mapping);
        }
        if (unmap.length != mapping.Size)
        {
            ThrowUnmappedLength(mapping, unmap.length);
        }
    }

    /// <inheritdoc/>
    protected override unsafe void ReleaseCore()
    {
        Hwpt[] hwpts;
        lock (_hwpts)
        {
            hwpts = [.. _hwpts];
            _hwpts.Clear();
        }
        foreach (Hwpt hwpt in hwpts)
        {
            if (hwpt.Allocated)
            {
                DestroyHwpt(hwpt.Id);
            }
        }
        Destroy(IoasId, "IOAS");
        _backend.OnContainerReleased(this);
    }

    /// <summary>The HWPTs to try, in order, before attaching a new device to the IOAS itself.</summary>
    internal uint[] CandidateHwpts(bool dirtyOnly)
    {
        lock (_hwpts)
        {
            var ids = new List<uint>(_hwpts.Count);
            foreach (Hwpt hwpt in _hwpts)
            {
                if (!dirtyOnly || hwpt.Dirty)
                {
                    ids.Add(hwpt.Id);
                }
            }
            return [.. ids];
        }
    }

    /// <summary>Records that a device attached to <paramref name="id"/>.</summary>
    internal void AddHwptUser(uint id, bool allocated, bool dirty)
    {
        lock (_hwpts)
        {
            foreach (Hwpt hwpt in _hwpts)
            {
                if (hwpt.Id == id)
                {
                    hwpt.Devices++;
                    return;
                }
            }
            _hwpts.Add(new Hwpt(id, allocated, dirty) { Devices = 1 });
            UpdateFeatures();
        }
    }

    /// <summary>Records that a device left <paramref name="id"/>; an automatic HWPT without devices is gone (the kernel
    /// destroyed it).</summary>
    internal void RemoveHwptUser(uint id)
    {
        lock (_hwpts)
        {
            for (int i = 0; i < _hwpts.Count; i++)
            {
                Hwpt hwpt = _hwpts[i];
                if (hwpt.Id == id)
                {
                    hwpt.Devices--;
                    if (hwpt.Devices <= 0 && !hwpt.Allocated)
                    {
                        _hwpts.RemoveAt(i);
                        UpdateFeatures();
                    }
                    return;
                }
            }
        }
    }

    /// <summary>Forgets an allocated HWPT no device uses and destroys it (undoing a failed attach).</summary>
    internal void DropAllocatedHwpt(uint id)
    {
        lock (_hwpts)
        {
            int index = _hwpts.FindIndex(h => h.Id == id);
            if (index < 0 || !_hwpts[index].Allocated || _hwpts[index].Devices > 0)
            {
                return;
            }
            _hwpts.RemoveAt(index);
            UpdateFeatures();
        }
        DestroyHwpt(id);
    }

    /// <summary>Destroys a HWPT (<c>IOMMU_DESTROY</c>), logging a failure.</summary>
    internal void DestroyHwpt(uint id) => Destroy(id, "HWPT");

    internal void AddAttached(IommuFdAttachedDevice device) => AddDevice(device);

    internal bool RemoveAttached(IommuFdAttachedDevice device) => RemoveDevice(device);

    /// <summary>Reads the IOAS's usable IOVA ranges and alignment (<c>IOMMU_IOAS_IOVA_RANGES</c>, two calls: the first
    /// learns how many ranges there are, the second fills them) and records them as the container's limits.</summary>
    /// <exception cref="VfioException">The kernel refused.</exception>
    internal unsafe void RefreshLimits()
    {
        var probe = new iommu_ioas_iova_ranges { size = (uint)Unsafe.SizeOf<iommu_ioas_iova_ranges>(), ioas_id = IoasId };
        int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, &probe);
        iommu_iova_range[] ranges = [];
        ulong alignment = probe.out_iova_alignment;
        for (int attempt = 0; rc == -(int)Errno.EMSGSIZE && attempt < MaxRangeAttempts; attempt++)
        {
            if (probe.num_iovas > MaxIovaRanges)
            {
                // An allocation the size of a hostile count would fail with OutOfMemoryException, untyped.
                throw new VfioException("IOMMU_IOAS_IOVA_RANGES", Name,
                    string.Create(CultureInfo.InvariantCulture, $"the kernel reported an implausible {probe.num_iovas} IOVA ranges (at most {MaxIovaRanges} are read)"),
                    "The kernel's answer is corrupt: report it with the kernel version; detaching devices with many reserved regions lowers the count.");
            }
            ranges = new iommu_iova_range[probe.num_iovas];
            fixed (iommu_iova_range* buffer = ranges)
            {
                probe = new iommu_ioas_iova_ranges
                {
                    size = (uint)Unsafe.SizeOf<iommu_ioas_iova_ranges>(),
                    ioas_id = IoasId,
                    num_iovas = (uint)ranges.Length,
                    allowed_iovas = (ulong)buffer,
                };
                rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, &probe);
            }
            alignment = probe.out_iova_alignment;
        }
        if (rc < 0)
        {
            throw new VfioException((Errno)(-rc), "IOMMU_IOAS_IOVA_RANGES", Name);
        }
        int count = (int)Math.Min(probe.num_iovas, (uint)ranges.Length);
        (IovaRange[] list, ulong pageSizes) = ParseIovaRanges(MemoryMarshal.AsBytes(ranges.AsSpan(0, count)), alignment, Name);
        IovaAlignment = alignment == 0 ? 1 : alignment;
        SetLimits(pageSizes, list);
    }

    /// <summary>The most IOVA ranges read from <c>IOMMU_IOAS_IOVA_RANGES</c> (the kernel reports a handful).</summary>
    internal const uint MaxIovaRanges = 4096;

    /// <summary>Decodes the ranges <c>IOMMU_IOAS_IOVA_RANGES</c> filled in (<c>struct iommu_iova_range</c>: start, last)
    /// and its <c>out_iova_alignment</c>, trusting nothing: no range, an inverted range or an alignment that is not a
    /// power of two up to 1 GiB is a <see cref="VfioException"/>.</summary>
    /// <param name="ranges">The ranges' bytes, 16 per range.</param>
    /// <param name="alignment">The reported alignment (0 means none).</param>
    /// <param name="name">The container, for messages.</param>
    /// <returns>The ranges, and the page sizes mappings use: the alignment rounded to at least 4 KiB.</returns>
    internal static (IovaRange[] Ranges, ulong PageSizes) ParseIovaRanges(ReadOnlySpan<byte> ranges, ulong alignment, string name)
    {
        int count = ranges.Length / 16;
        if (count == 0)
        {
            throw new VfioException("IOMMU_IOAS_IOVA_RANGES", name, "the kernel reported no usable IOVA range",
                "Detach the devices whose reserved regions cover the whole IOVA space.");
        }
        if (alignment > 1UL << 30 || (alignment & (alignment - 1)) != 0)
        {
            throw new VfioException("IOMMU_IOAS_IOVA_RANGES", name,
                string.Create(CultureInfo.InvariantCulture, $"the kernel reported an implausible IOVA alignment 0x{alignment:x} (a power of two up to 1 GiB is expected)"),
                "The kernel's answer is corrupt: report it with the kernel version.");
        }
        var list = new IovaRange[count];
        for (int i = 0; i < count; i++)
        {
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(ranges[(i * 16)..]);
            ulong last = BinaryPrimitives.ReadUInt64LittleEndian(ranges[((i * 16) + 8)..]);
            if (last < start)
            {
                throw new VfioException("IOMMU_IOAS_IOVA_RANGES", name,
                    string.Create(CultureInfo.InvariantCulture, $"the kernel reported an inverted range [0x{start:x}-0x{last:x}]"));
            }
            list[i] = new IovaRange(start, last);
        }
        // The IOAS reports one alignment, never above PAGE_SIZE; mappings are at least 4 KiB-aligned (QEMU's default).
        return (list, Math.Max(4096UL, alignment));
    }

    private static string HwptName(uint id) => "HWPT " + id.ToString(CultureInfo.InvariantCulture);

    private unsafe void Destroy(uint id, string kind)
    {
        var destroy = new iommu_destroy { size = (uint)Unsafe.SizeOf<iommu_destroy>(), id = id };
        int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_DESTROY, &destroy);
        if (rc < 0)
        {
            Log.DestroyFailed(_logger, kind, id, Name, (Errno)(-rc));
        }
    }

    private uint[] DirtyHwpts()
    {
        lock (_hwpts)
        {
            var ids = new uint[_hwpts.Count];
            for (int i = 0; i < ids.Length; i++)
            {
                ids[i] = _hwpts[i].Id;
            }
            return ids;
        }
    }

    private void UpdateFeatures()
    {
        bool dirty = _hwpts.Count > 0;
        foreach (Hwpt hwpt in _hwpts)
        {
            dirty &= hwpt.Dirty;
        }
        Features = dirty ? Features | IommuBackendFeatures.DirtyTracking : Features & ~IommuBackendFeatures.DirtyTracking;
    }

    private void RequireDirtyTracking()
    {
        if ((Features & IommuBackendFeatures.DirtyTracking) == 0)
        {
            base.StartDirtyTracking(); // throws the base class's NotSupportedException
        }
    }

    private unsafe void SetDirtyTracking(bool enable)
    {
        RequireDirtyTracking();
        foreach (uint hwpt in DirtyHwpts())
        {
            var set = new iommu_hwpt_set_dirty_tracking
            {
                size = (uint)Unsafe.SizeOf<iommu_hwpt_set_dirty_tracking>(),
                flags = enable ? IommuUapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
                hwpt_id = hwpt,
            };
            int rc = _kernel.Ioctl(_iommufd, IommuUapi.IOMMU_HWPT_SET_DIRTY_TRACKING, &set);
            if (rc < 0)
            {
                throw new VfioException((Errno)(-rc), "IOMMU_HWPT_SET_DIRTY_TRACKING", HwptName(hwpt));
            }
        }
        Log.DirtyTracking(_logger, Name, enable);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowMapFailed(int rc, in DmaMapping mapping)
    {
        var errno = (Errno)(-rc);
        if (errno == Errno.ENOMEM)
        {
            throw new VfioDmaException(DmaMappingFailure.LimitReached, "IOMMU_IOAS_MAP", Name,
                $"pinning {mapping.Range} (0x{mapping.Size:x} bytes) exceeds the locked-memory limit",
                "iommufd charges every pinned page to RLIMIT_MEMLOCK: raise the limit (ulimit -l, LimitMEMLOCK= in the systemd unit, or prlimit) to cover all DMA mappings, or run with CAP_IPC_LOCK.",
                errno);
        }
        throw new VfioDmaException(DmaMappingFailure.Kernel, "IOMMU_IOAS_MAP", Name,
            $"the kernel refused to map {mapping.Range} at host address 0x{(ulong)mapping.HostAddress:x} ({errno})",
            errno == Errno.EFAULT
                ? "The host address range is not memory this process has mapped, or not ordinary pinnable memory (e.g. a device BAR mmap, which iommufd cannot map by address): map memory the process owns, such as a DmaBuffer, and keep it mapped while the DMA mapping exists."
                : null,
            errno);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUnmapFailed(int rc, in DmaMapping mapping)
    {
        var errno = (Errno)(-rc);
        if (errno == Errno.ENOENT)
        {
            throw new VfioDmaException(DmaMappingFailure.NotMapped, "IOMMU_IOAS_UNMAP", Name,
                $"the IOAS has nothing mapped at {mapping.Range} although DMA space '{Space.Name}' has that mapping: something else unmapped it through this iommufd",
                "Do not map or unmap in this IOAS behind the DMA space (e.g. through a shared iommufd); the space keeps the mapping in its book until its container is released.",
                errno);
        }
        throw new VfioDmaException(DmaMappingFailure.Kernel, "IOMMU_IOAS_UNMAP", Name,
            $"the kernel refused to unmap {mapping.Range} ({errno})", null, errno);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUnmappedLength(in DmaMapping mapping, ulong unmapped)
        => throw new VfioDmaException(DmaMappingFailure.NotMapped, "IOMMU_IOAS_UNMAP", Name,
            string.Create(CultureInfo.InvariantCulture,
                $"the kernel unmapped 0x{unmapped:x} bytes of {mapping.Range} (0x{mapping.Size:x} expected): the IOAS and DMA space '{Space.Name}' disagree"),
            "Do not map or unmap in this IOAS behind the DMA space.");

    private sealed class Hwpt(uint id, bool allocated, bool dirty)
    {
        internal uint Id { get; } = id;

        internal bool Allocated { get; } = allocated;

        internal bool Dirty { get; } = dirty;

        internal int Devices { get; set; }
    }
}
