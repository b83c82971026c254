// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.Legacy;

/// <summary>
/// A legacy VFIO container (<c>/dev/vfio/vfio</c>, or <c>/dev/iommu</c> in iommufd's container compatibility) with
/// its groups and IOMMU backend (Type1 v2/v1 or no-IOMMU): the <see cref="DmaContainer"/> of the legacy backend.
/// </summary>
/// <remarks>
/// Not sealed: a package for another container IOMMU type (sPAPR TCE) derives from it, as QEMU's sPAPR container
/// derives from the legacy one, and overrides <see cref="SetIommu"/>, <see cref="ReadInfo"/>, <c>MapCore</c> and
/// <c>UnmapCore</c> (and the DMA-window hooks); <see cref="LegacyBackend"/> creates it through the package's
/// <see cref="LegacyIommuTypeHandler"/>.
/// </remarks>
public partial class LegacyContainer : DmaContainer
{
    private const string MapOperation = "VFIO_IOMMU_MAP_DMA";
    private const string UnmapOperation = "VFIO_IOMMU_UNMAP_DMA";
    private const string DirtyOperation = "VFIO_IOMMU_DIRTY_PAGES";
    private const int MaxInfoSize = 1 << 20;

    private readonly List<LegacyGroup> _groups = [];
    private readonly bool _ownsFd;
    private int? _available;

    /// <summary>Creates the container object for an open container fd; no group is set to it yet.</summary>
    /// <param name="backend">The backend creating it.</param>
    /// <param name="space">The space it is for.</param>
    /// <param name="containerFd">The container fd (<c>/dev/vfio/vfio</c>, or an iommufd in compatibility mode).</param>
    /// <param name="ownsContainerFd">True to close the fd on release; false for a passed (borrowed) fd.</param>
    /// <param name="iommuType">The IOMMU type <see cref="SetIommu"/> selects, e.g. <c>VFIO_TYPE1v2_IOMMU</c>.</param>
    protected internal LegacyContainer(LegacyBackend backend, DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
        : base(backend, space, NameOf(containerFd))
    {
        ArgumentNullException.ThrowIfNull(containerFd);
        Kernel = backend.ContainerKernel;
        Fd = containerFd;
        _ownsFd = ownsContainerFd;
        IommuType = iommuType;
        Logger = backend.ContainerLogger;
        Features = IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.PassedFds;
    }

    /// <summary>The container fd.</summary>
    public SafeFileHandle Fd { get; }

    /// <summary>The IOMMU type set on the container, e.g. <c>VFIO_TYPE1v2_IOMMU</c> (3) or <c>VFIO_NOIOMMU_IOMMU</c> (8).</summary>
    public uint IommuType { get; }

    /// <summary>True for a container of no-IOMMU groups: it maps nothing (devices use physical addresses).</summary>
    public bool IsNoIommu => IommuType == VfioUapi.VFIO_NOIOMMU_IOMMU;

    /// <summary>The IOMMU group numbers set to this container.</summary>
    public IReadOnlyList<int> Groups
    {
        get
        {
            lock (_groups)
            {
                return [.. _groups.Select(static g => g.Number)];
            }
        }
    }

    /// <inheritdoc/>
    public override int? DmaMappingsAvailable => _available;

    /// <summary>The kernel port.</summary>
    protected IKernel Kernel { get; }

    /// <summary>Where problems are logged.</summary>
    protected ILogger Logger { get; }

    /// <summary>Selects the IOMMU backend with <c>VFIO_SET_IOMMU</c>(<see cref="IommuType"/>) once the first group is
    /// set to the container.</summary>
    /// <exception cref="VfioException">The kernel refused.</exception>
    protected virtual void SetIommu()
        => VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_SET_IOMMU, (nint)IommuType), "VFIO_SET_IOMMU", Name);

    /// <summary>Reads the IOMMU's page sizes, IOVA ranges, mapping budget and dirty tracking
    /// (<c>VFIO_IOMMU_GET_INFO</c> with its capability chain) and records them with
    /// <see cref="DmaContainer.SetLimits(ulong, IReadOnlyList{IovaRange})"/>. Nothing to read for a no-IOMMU container.</summary>
    /// <exception cref="VfioException">The kernel refused, or returned a malformed chain.</exception>
    protected virtual void ReadInfo()
    {
        if (IsNoIommu)
        {
            return;
        }
        int size = Marshal.SizeOf<vfio_iommu_type1_info>();
        byte[] buffer = new byte[256];
        while (true)
        {
            MemoryMarshal.Write(buffer, new vfio_iommu_type1_info { argsz = (uint)buffer.Length });
            VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_GET_INFO, buffer.AsSpan()), "VFIO_IOMMU_GET_INFO", Name);
            uint needed = MemoryMarshal.Read<vfio_iommu_type1_info>(buffer).argsz;
            if (needed <= buffer.Length)
            {
                break;
            }
            if (needed > MaxInfoSize)
            {
                throw new VfioException("VFIO_IOMMU_GET_INFO", Name, $"the kernel asks for an implausible {needed}-byte info buffer");
            }
            buffer = new byte[needed];
        }
        vfio_iommu_type1_info info = MemoryMarshal.Read<vfio_iommu_type1_info>(buffer);
        ulong pageSizes = (info.flags & VfioUapi.VFIO_IOMMU_INFO_PGSIZES) != 0 ? info.iova_pgsizes : 4096;
        IReadOnlyList<IovaRange> ranges = [new IovaRange(0, ulong.MaxValue)];
        bool dirty = false;
        if ((info.flags & VfioUapi.VFIO_IOMMU_INFO_CAPS) != 0 && info.cap_offset != 0)
        {
            int length = (int)Math.Min((uint)buffer.Length, Math.Max(info.argsz, (uint)size));
            IReadOnlyList<VfioCapability> caps = VfioCapabilityChain.Parse(buffer.AsSpan(0, length), size, info.cap_offset, "VFIO_IOMMU_GET_INFO", Name);
            foreach (VfioCapability cap in caps)
            {
                ReadOnlySpan<byte> bytes = cap.Bytes.Span;
                switch (cap.Id)
                {
                    case VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                        ranges = ParseIovaRanges(bytes, Name);
                        break;
                    case VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL when bytes.Length >= 12:
                        uint avail = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
                        _available = avail > int.MaxValue ? null : (int)avail;
                        break;
                    case VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION when bytes.Length >= 32:
                        dirty = true;
                        break;
                }
            }
        }
        if (dirty)
        {
            Features |= IommuBackendFeatures.DirtyTracking;
        }
        SetLimits(pageSizes, ranges);
    }

    /// <inheritdoc/>
    protected override unsafe void MapCore(in DmaMapping mapping)
    {
        if (IsNoIommu)
        {
            throw NoIommuCannotMap(mapping);
        }
        var map = new vfio_iommu_type1_dma_map
        {
            argsz = (uint)sizeof(vfio_iommu_type1_dma_map),
            flags = MapFlags(mapping.Access),
            vaddr = (ulong)mapping.HostAddress,
            iova = mapping.Iova,
            size = mapping.Size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_MAP_DMA, &map);
        // As QEMU: EBUSY "shouldn't be necessary, but we sometimes see it": unmap the range and try once more.
        if (rc == -(int)Errno.EBUSY && Unmap(mapping.Iova, mapping.Size, out _) >= 0)
        {
            rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_MAP_DMA, &map);
        }
        if (rc < 0)
        {
            throw MapFailed(rc, mapping);
        }
        if (_available is int available)
        {
            _available = available - 1;
        }
    }

    /// <inheritdoc/>
    protected override void UnmapCore(in DmaMapping mapping)
    {
        if (IsNoIommu)
        {
            return;
        }
        int rc = Unmap(mapping.Iova, mapping.Size, out ulong unmapped);
        if (rc < 0)
        {
            throw new VfioDmaException(DmaMappingFailure.Kernel, UnmapOperation, Name, UnmapFailedDetail(mapping, rc),
                errno: (Errno)(-rc));
        }
        if (_available is int available)
        {
            _available = available + 1;
        }
        if (unmapped != mapping.Size)
        {
            throw new VfioDmaException(DmaMappingFailure.Kernel, UnmapOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"the kernel unmapped 0x{unmapped:x} bytes at IOVA 0x{mapping.Iova:x} instead of the mapping's 0x{mapping.Size:x}"),
                "The container's mappings no longer match the DMA space's book; detach the devices and attach them again.");
        }
    }

    /// <inheritdoc/>
    public override void StartDirtyTracking() => Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START);

    /// <inheritdoc/>
    public override void StopDirtyTracking() => Dirty(VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);

    /// <inheritdoc/>
    public override unsafe void ReadDirtyBitmap(ulong iova, ulong size, ulong pageSize, Span<ulong> bitmap)
    {
        if ((Features & IommuBackendFeatures.DirtyTracking) == 0)
        {
            base.ReadDirtyBitmap(iova, size, pageSize, bitmap);
            return;
        }
        if (pageSize == 0 || !ulong.IsPow2(pageSize))
        {
            throw new ArgumentOutOfRangeException(nameof(pageSize), pageSize, "The tracking granule is a power of two.");
        }
        ulong pages = size / pageSize;
        ulong bytes = (pages + 63) / 64 * 8;
        if ((ulong)bitmap.Length * 8 < bytes)
        {
            throw new ArgumentException($"The bitmap holds {bitmap.Length * 64} bits; {pages} pages need {bytes / 8} ulongs.", nameof(bitmap));
        }
        fixed (ulong* data = bitmap)
        {
            var request = new DirtyBitmapRequest
            {
                Argsz = (uint)sizeof(DirtyBitmapRequest),
                Flags = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
                Range = new vfio_iommu_type1_dirty_bitmap_get
                {
                    iova = iova,
                    size = size,
                    bitmap = new vfio_bitmap { pgsize = pageSize, size = bytes, data = (ulong)data },
                },
            };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, &request), DirtyOperation, Name);
        }
    }

    /// <inheritdoc/>
    protected override void ReleaseCore()
    {
        LegacyGroup[] groups;
        lock (_groups)
        {
            groups = [.. _groups];
            _groups.Clear();
        }
        var backend = (LegacyBackend)Backend;
        for (int i = groups.Length - 1; i >= 0; i--)
        {
            UnsetAndClose(groups[i]);
            backend.Forget(groups[i]);
        }
        if (_ownsFd)
        {
            Fd.Dispose();
        }
        backend.ContainerReleased(this);
    }

    /// <summary>Sets <paramref name="group"/> to this container (<c>VFIO_GROUP_SET_CONTAINER</c>); the first group
    /// also selects the IOMMU and reads its info.</summary>
    /// <returns>0, or <c>-errno</c> of SET_CONTAINER (the group is then not in the container).</returns>
    internal unsafe int TryAddGroup(LegacyGroup group)
    {
        int fd = (int)Fd.DangerousGetHandle();
        int rc = Kernel.Ioctl(group.Fd, VfioUapi.VFIO_GROUP_SET_CONTAINER, &fd);
        if (rc < 0)
        {
            return rc;
        }
        group.Container = this;
        lock (_groups)
        {
            _groups.Add(group);
        }
        return 0;
    }

    /// <summary>Selects the IOMMU and reads its info (after the first group joined).</summary>
    internal void Initialize()
    {
        SetIommu();
        ReadInfo();
    }

    /// <summary>Reads the info again (a device opened on iommufd's Type1 compatibility narrows it).</summary>
    internal void RefreshInfo() => ReadInfo();

    /// <summary>Unsets and closes a group whose last device left while others remain in the container.</summary>
    internal void RemoveGroup(LegacyGroup group)
    {
        lock (_groups)
        {
            _groups.Remove(group);
        }
        UnsetAndClose(group);
    }

    internal void Add(LegacyAttachedDevice device) => AddDevice(device);

    internal bool Remove(LegacyAttachedDevice device) => RemoveDevice(device);

    private void UnsetAndClose(LegacyGroup group)
    {
        int rc = Kernel.Ioctl(group.Fd, VfioUapi.VFIO_GROUP_UNSET_CONTAINER, 0);
        if (rc < 0)
        {
            LegacyLog.UnsetFailed(Logger, group.Number, Name, (Errno)(-rc));
        }
        group.Container = null;
        group.Close();
    }

    private unsafe int Unmap(ulong iova, ulong size, out ulong unmapped)
    {
        var unmap = new vfio_iommu_type1_dma_unmap
        {
            argsz = (uint)sizeof(vfio_iommu_type1_dma_unmap),
            iova = iova,
            size = size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, &unmap);
        unmapped = unmap.size;
        return rc;
    }

    private unsafe void Dirty(uint flag)
    {
        if ((Features & IommuBackendFeatures.DirtyTracking) == 0)
        {
            if (flag == VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
            {
                base.StartDirtyTracking();
            }
            base.StopDirtyTracking();
            return;
        }
        var request = new vfio_iommu_type1_dirty_bitmap { argsz = (uint)sizeof(vfio_iommu_type1_dirty_bitmap), flags = flag };
        VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, &request), DirtyOperation, Name);
    }

    private static uint MapFlags(DmaAccess access)
        => ((access & DmaAccess.Read) != 0 ? VfioUapi.VFIO_DMA_MAP_FLAG_READ : 0)
        | ((access & DmaAccess.Write) != 0 ? VfioUapi.VFIO_DMA_MAP_FLAG_WRITE : 0);

    private static string NameOf(SafeFileHandle fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        return "container " + ((long)fd.DangerousGetHandle()).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Decodes <c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c> (header, count, then start/end pairs), trusting
    /// nothing: a count the bytes cannot hold or an inverted range is a <see cref="VfioException"/>.</summary>
    /// <param name="cap">The capability's bytes, header included.</param>
    /// <param name="name">The container, for messages.</param>
    internal static IReadOnlyList<IovaRange> ParseIovaRanges(ReadOnlySpan<byte> cap, string name)
    {
        const int first = vfio_iommu_type1_info_cap_iova_range.iova_ranges_offset;
        if (cap.Length < first)
        {
            throw new VfioException("VFIO_IOMMU_GET_INFO", name, "the IOVA range capability is shorter than its header");
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(cap[8..]);
        if (count == 0 || count > (uint)(cap.Length - first) / 16)
        {
            throw new VfioException("VFIO_IOMMU_GET_INFO", name,
                $"the IOVA range capability claims {count} ranges in {cap.Length} bytes");
        }
        var ranges = new List<IovaRange>((int)count);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> entry = cap.Slice(first + (i * 16), 16);
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(entry);
            ulong end = BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
            if (end < start)
            {
                throw new VfioException("VFIO_IOMMU_GET_INFO", name, $"the IOVA range 0x{start:x}..0x{end:x} ends before it starts");
            }
            ranges.Add(new IovaRange(start, end));
        }
        return ranges;
    }

    private VfioDmaException MapFailed(int rc, in DmaMapping mapping)
    {
        var errno = (Errno)(-rc);
        string detail = string.Create(CultureInfo.InvariantCulture,
            $"mapping IOVA 0x{mapping.Iova:x} of 0x{mapping.Size:x} bytes at host address 0x{(ulong)mapping.HostAddress:x} failed: {errno}");
        return errno switch
        {
            Errno.ENOSPC => new VfioDmaException(DmaMappingFailure.LimitReached, MapOperation, Name,
                detail + $" (the container's dma_entry_limit is reached{AvailableText()})",
                "Use fewer, larger mappings, or raise the limit: echo N > /sys/module/vfio_iommu_type1/parameters/dma_entry_limit (or vfio_iommu_type1.dma_entry_limit=N).",
                errno),
            Errno.ENOMEM => new VfioDmaException(DmaMappingFailure.LimitReached, MapOperation, Name,
                detail + " (pinning the pages exceeds the locked-memory limit RLIMIT_MEMLOCK)",
                "Raise the locked-memory limit to cover every DMA mapping: ulimit -l, LimitMEMLOCK= in the systemd unit, or memlock in /etc/security/limits.conf (or grant CAP_IPC_LOCK).",
                errno),
            Errno.EFAULT => new VfioDmaException(DmaMappingFailure.Kernel, MapOperation, Name,
                detail,
                "The host address range is not memory this process has mapped (or not with the access asked for): map memory the process owns, such as a DmaBuffer, and keep it mapped for as long as the DMA mapping exists.",
                errno),
            _ => new VfioDmaException(DmaMappingFailure.Kernel, MapOperation, Name, detail, hint: null, errno),
        };
    }

    private string AvailableText() => _available is int available
        ? string.Create(CultureInfo.InvariantCulture, $"; {available} more mappings were expected to fit")
        : string.Empty;

    private static string UnmapFailedDetail(in DmaMapping mapping, int rc)
        => string.Create(CultureInfo.InvariantCulture, $"unmapping IOVA 0x{mapping.Iova:x} of 0x{mapping.Size:x} bytes failed: {(Errno)(-rc)}");

    private VfioDmaException NoIommuCannotMap(in DmaMapping mapping)
        => new(DmaMappingFailure.Kernel, MapOperation, Name,
            string.Create(CultureInfo.InvariantCulture,
                $"a no-IOMMU container cannot map IOVA 0x{mapping.Iova:x}: without an IOMMU devices use physical addresses"),
            "Give no-IOMMU devices physical addresses of locked memory from Vfio.Core.PhysicalDmaBuffer, not DMA space mappings.");

    /// <summary><c>struct vfio_iommu_type1_dirty_bitmap</c> followed by its GET_BITMAP payload.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct DirtyBitmapRequest
    {
        public uint Argsz;
        public uint Flags;
        public vfio_iommu_type1_dirty_bitmap_get Range;
    }
}
