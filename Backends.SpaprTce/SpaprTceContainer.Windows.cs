// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Numerics;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.SpaprTce;

public sealed partial class SpaprTceContainer
{
    private const string CreateOperation = "VFIO_IOMMU_SPAPR_TCE_CREATE";
    private const string RemoveOperation = "VFIO_IOMMU_SPAPR_TCE_REMOVE";
    private const string RegisterOperation = "VFIO_IOMMU_SPAPR_REGISTER_MEMORY";
    private const string UnregisterOperation = "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY";

    private readonly List<Window> _windows = [];

    /// <summary>The DMA windows open now, by bus address.</summary>
    public IReadOnlyList<SpaprDmaWindow> Windows
    {
        get
        {
            lock (_windows)
            {
                return [.. _windows.OrderBy(static w => w.Start).Select(static w => new SpaprDmaWindow(w.Start, w.Size, 1UL << w.PageShift, w.Levels, w.Users, w.Fixed))];
            }
        }
    }

    /// <summary>
    /// The levels QEMU starts from for a window (<c>vfio_spapr_create_window</c>): the TCE table's bytes in base pages,
    /// rounded up to a power of two, one level per 6 bits of it (a level of a base page holds 2^9 TCEs on 4 KiB pages).
    /// </summary>
    /// <param name="windowSize">The window's size in bytes.</param>
    /// <param name="pageShift">The log2 of its TCE page size.</param>
    /// <param name="basePageSize">The host's base page size.</param>
    /// <returns>The levels to try first (at least 1).</returns>
    public static int EstimateLevels(ulong windowSize, int pageShift, ulong basePageSize)
    {
        ArgumentOutOfRangeException.ThrowIfZero(basePageSize);
        ulong entries = windowSize >> pageShift;
        ulong pages = Math.Max(entries * 8 / basePageSize, 1);
        pages = BitOperations.RoundUpToPowerOf2(pages);
        return (BitOperations.TrailingZeroCount(pages) / 6) + 1;
    }

    /// <inheritdoc/>
    protected override void OpenDmaWindow(in DmaMapping mapping)
    {
        lock (_windows)
        {
            foreach (Window open in _windows)
            {
                if (open.Covers(mapping.Iova, mapping.Size))
                {
                    CheckPageFits(open, mapping);
                    open.Users++;
                    return;
                }
            }
            bool high = mapping.Iova >= HighWindowStart;
            ulong regionStart = high ? HighWindowStart : Dma32WindowStart;
            foreach (Window open in _windows)
            {
                if ((open.Start >= HighWindowStart) == high)
                {
                    throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, CreateOperation, Name,
                        string.Create(CultureInfo.InvariantCulture,
                            $"the mapping {mapping.Range} lies beyond the open DMA window 0x{open.Start:x}+0x{open.Size:x}, which cannot grow while {open.Users} mappings use it"),
                        "Map the largest section of that range first (the window is sized for the section that opens it, at least the 32-bit window's size), or unmap the window's mappings so it can be opened again larger.");
                }
            }
            if (_windows.Count >= MaxWindows)
            {
                throw new VfioDmaException(DmaMappingFailure.LimitReached, CreateOperation, Name,
                    string.Create(CultureInfo.InvariantCulture,
                        $"the mapping {mapping.Range} needs a DMA window, but the host allows {MaxWindows} and all are open ({FormatWindows()})"),
                    "Place mappings inside the open windows (the 32-bit window at 0x" + Dma32WindowStart.ToString("x", CultureInfo.InvariantCulture) + " or the one at 1<<59), or unmap a window's last mapping first.");
            }
            // The kernel fills the first free slot. A low window outside slot 0 would go to 1<<59 on PowerNV and, on
            // pseries, ask the hypervisor for a second 64-bit window, which fails with ENODEV and marks the PE failed
            // until reboot: refused here, before the ioctl.
            int slot = FirstFreeSlot();
            if (!high && slot != 0)
            {
                throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, CreateOperation, Name,
                    string.Create(CultureInfo.InvariantCulture,
                        $"the mapping {mapping.Range} needs a DMA window at the 32-bit window's address 0x{Dma32WindowStart:x}, but the window at 1<<59 ({FormatWindows()}) holds the host's first window slot and the platform places a window in the second slot at 1<<59 (on pseries, asking for it would mark the device's PE failed until reboot)"),
                    "Map below 1<<59 before mapping at or above it, or unmap the window at 1<<59's last mapping first.");
            }
            // Low windows use 4 KiB TCEs (what the 32-bit window has): pseries re-creates a window at bus address 0 only
            // for 4 KiB TCEs and at most the 32-bit window's size; any other shape becomes its window at 1<<59.
            int pageShift = !high && (HostPageSizes & (1UL << 12)) != 0 && (((mapping.Iova | mapping.Size | (ulong)mapping.HostAddress) & 0xFFF) == 0)
                ? 12 : ChoosePageShift(mapping);
            ulong needed = mapping.Iova - regionStart + mapping.Size;
            // A high window in the first slot is made larger than the 32-bit window, so that pseries does not take it for
            // the default window (which it re-creates at 0x0) but asks the hypervisor for its window at 1<<59.
            ulong minimum = !high ? Math.Max(Dma32WindowSize, 1UL << pageShift)
                : slot == 0 ? Math.Max(1UL << 30, Dma32WindowSize << 1)
                : 1UL << 30;
            ulong size = Math.Max(BitOperations.RoundUpToPowerOf2(needed), BitOperations.RoundUpToPowerOf2(minimum));
            if (needed > (high ? HighWindowLimit : HighWindowStart - regionStart))
            {
                throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, CreateOperation, Name,
                    string.Create(CultureInfo.InvariantCulture, $"the mapping {mapping.Range} would need a DMA window of 0x{size:x} bytes"),
                    "Map it at a lower IOVA.");
            }
            var window = CreateWindow(pageShift, size, mapping.Iova);
            window.Slot = slot;
            if (window.Start != regionStart)
            {
                RemoveWindowQuietly(window.Start);
                throw new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, CreateOperation, Name,
                    string.Create(CultureInfo.InvariantCulture,
                        $"the host placed the new DMA window of 0x{size:x} bytes at 0x{window.Start:x}, not at 0x{regionStart:x} where the mapping {mapping.Range} needs it (PowerNV places the first window opened at the 32-bit window's address and the second at 1<<59; pseries places a first window at 0x0 only up to the 32-bit window's size 0x{Dma32WindowSize:x}, every other at 1<<59)"),
                    "Map in the 32-bit window first, within the 32-bit window's size; the second window then opens at 1<<59.");
            }
            window.Users = 1;
            _windows.Add(window);
            PublishWindows();
            SpaprTceLog.WindowOpened(Logger, Name, window.Start, window.Size, 1UL << window.PageShift, window.Levels, mapping.Iova);
        }
    }

    /// <inheritdoc/>
    protected override void CloseDmaWindow(in DmaMapping mapping)
    {
        lock (_windows)
        {
            for (int i = 0; i < _windows.Count; i++)
            {
                Window window = _windows[i];
                if (!window.Covers(mapping.Iova, mapping.Size) || window.Fixed)
                {
                    continue;
                }
                if (--window.Users > 0)
                {
                    return;
                }
                _windows.RemoveAt(i);
                RemoveWindowQuietly(window.Start);
                PublishWindows();
                SpaprTceLog.WindowRemoved(Logger, Name, window.Start, window.Size);
                return;
            }
        }
    }

    /// <summary>The slot the kernel gives the next window: its first one that no open window holds.</summary>
    private int FirstFreeSlot()
    {
        int slot = 0;
        while (_windows.Exists(w => !w.Fixed && w.Slot == slot))
        {
            slot++;
        }
        return slot;
    }

    private void AddFixedWindow(ulong start, ulong size)
    {
        lock (_windows)
        {
            _windows.Add(new Window(start, size, 12, 1) { Fixed = true });
        }
    }

    /// <summary>The ranges a v2 container can open windows over: from the 32-bit window's address up to the second
    /// window's, and the second window's (the platforms place the first window at the former, the second at 1&lt;&lt;59).</summary>
    private List<IovaRange> OpenableRanges()
        => [new IovaRange(Dma32WindowStart, HighWindowStart - 1), IovaRange.FromStartSize(HighWindowStart, HighWindowLimit)];

    /// <summary>The largest host page size that divides the mapping's IOVA, size and host address and is at most the
    /// process's base page (the memory behind a section is pinned in base pages; larger TCEs need huge pages the
    /// library cannot see).</summary>
    private int ChoosePageShift(in DmaMapping mapping)
    {
        ulong basePage = (ulong)Environment.SystemPageSize;
        ulong candidates = HostPageSizes & ((basePage << 1) - 1);
        ulong alignment = mapping.Iova | mapping.Size | (ulong)mapping.HostAddress;
        for (int shift = 63; shift >= 0; shift--)
        {
            ulong page = 1UL << shift;
            if ((candidates & page) != 0 && (alignment & (page - 1)) == 0)
            {
                return shift;
            }
        }
        throw new VfioDmaException(DmaMappingFailure.Misaligned, CreateOperation, Name,
            string.Create(CultureInfo.InvariantCulture,
                $"the mapping {mapping.Range} at host address 0x{(ulong)mapping.HostAddress:x} is aligned to none of the host's IOMMU page sizes 0x{HostPageSizes:x} up to the base page 0x{basePage:x}"),
            "Map page-aligned memory in whole pages of one of the host's IOMMU page sizes.");
    }

    private void CheckPageFits(Window window, in DmaMapping mapping)
    {
        ulong mask = (1UL << window.PageShift) - 1;
        if (((mapping.Iova | mapping.Size | (ulong)mapping.HostAddress) & mask) != 0)
        {
            throw new VfioDmaException(DmaMappingFailure.Misaligned, MapOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"the mapping {mapping.Range} is not aligned to the 0x{mask + 1:x}-byte TCEs of the DMA window 0x{window.Start:x}+0x{window.Size:x} that covers it"),
                "Map in whole pages of the window's TCE size.");
        }
    }

    /// <summary>Creates a window: levels from QEMU's estimate, retried with one more up to the host's maximum.</summary>
    private unsafe Window CreateWindow(int pageShift, ulong size, ulong iova)
    {
        // An estimate above the host's limit starts at the limit: a platform with one level (pseries) allocates the
        // whole table itself, and the kernel is the judge.
        int levels = Math.Min(EstimateLevels(size, pageShift, (ulong)Environment.SystemPageSize), MaxLevels);
        int rc = 0;
        for (; levels <= MaxLevels; levels++)
        {
            var create = new vfio_iommu_spapr_tce_create
            {
                argsz = (uint)sizeof(vfio_iommu_spapr_tce_create),
                page_shift = (uint)pageShift,
                window_size = size,
                levels = (uint)levels,
            };
            rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE, &create);
            if (rc == 0)
            {
                return new Window(create.start_addr, size, pageShift, levels);
            }
            if (rc == -(int)Errno.ENOSPC || levels == MaxLevels)
            {
                break;
            }
            SpaprTceLog.LevelsRetried(Logger, Name, size, levels, (Errno)(-rc), levels + 1);
        }
        var errno = rc < 0 ? (Errno)(-rc) : Errno.EINVAL;
        string detail = string.Create(CultureInfo.InvariantCulture,
            $"creating a DMA window of 0x{size:x} bytes with 0x{1UL << pageShift:x}-byte TCEs (up to {MaxLevels} levels) for IOVA 0x{iova:x} failed: {errno}");
        throw errno switch
        {
            Errno.ENOMEM => new VfioDmaException(DmaMappingFailure.LimitReached, CreateOperation, Name,
                detail + " (the TCE table is accounted against the locked-memory limit RLIMIT_MEMLOCK)", MemlockFix, errno),
            Errno.ENOSPC => new VfioDmaException(DmaMappingFailure.LimitReached, CreateOperation, Name,
                detail + " (the host has no free window slot)", "Unmap a window's last mapping first; the host allows " + MaxWindows.ToString(CultureInfo.InvariantCulture) + " windows.", errno),
            _ => new VfioDmaException(DmaMappingFailure.Kernel, CreateOperation, Name, detail, "Map a smaller section, or at a lower IOVA.", errno),
        };
    }

    private unsafe int RemoveWindow(ulong start)
    {
        var remove = new vfio_iommu_spapr_tce_remove { argsz = (uint)sizeof(vfio_iommu_spapr_tce_remove), start_addr = start };
        return Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove);
    }

    private void RemoveWindowOrThrow(ulong start) => VfioException.ThrowIfFailed(RemoveWindow(start), RemoveOperation, Name);

    private void RemoveWindowQuietly(ulong start)
    {
        int rc = RemoveWindow(start);
        if (rc < 0)
        {
            SpaprTceLog.Failed(Logger, RemoveOperation, Name, (Errno)(-rc));
        }
    }

    private void CloseAllWindows()
    {
        lock (_windows)
        {
            foreach (Window window in _windows)
            {
                if (!window.Fixed)
                {
                    RemoveWindowQuietly(window.Start);
                }
            }
            _windows.Clear();
        }
    }

    /// <summary>Publishes the open windows as the container's IOVA ranges (the property, not SetLimits: the space's
    /// lock is held).</summary>
    private void PublishWindows()
        => IovaRanges = [.. _windows.OrderBy(static w => w.Start).Select(static w => IovaRange.FromStartSize(w.Start, w.Size))];

    private string FormatWindows()
        => string.Join(", ", _windows.Select(static w => string.Create(CultureInfo.InvariantCulture, $"0x{w.Start:x}+0x{w.Size:x}")));

    // ---- pre-registration (v2) ---------------------------------------------------------------------------------------

    private unsafe void Register(in DmaMapping mapping)
    {
        var key = (mapping.HostAddress, mapping.Size);
        if (_registered.TryGetValue(key, out int users))
        {
            _registered[key] = users + 1;
            return;
        }
        var param = new vfio_iommu_spapr_register_memory
        {
            argsz = (uint)sizeof(vfio_iommu_spapr_register_memory),
            vaddr = (ulong)mapping.HostAddress,
            size = mapping.Size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &param);
        if (rc < 0)
        {
            throw RegisterFailed((Errno)(-rc), mapping);
        }
        _registered[key] = 1;
    }

    private void Unregister(in DmaMapping mapping, bool quietly)
    {
        var key = (mapping.HostAddress, mapping.Size);
        if (!_registered.TryGetValue(key, out int users))
        {
            return;
        }
        if (users > 1)
        {
            _registered[key] = users - 1;
            return;
        }
        _registered.Remove(key);
        UnregisterRegion(mapping.HostAddress, mapping.Size, quietly);
    }

    private unsafe void UnregisterRegion(nint address, ulong size, bool quietly)
    {
        var param = new vfio_iommu_spapr_register_memory
        {
            argsz = (uint)sizeof(vfio_iommu_spapr_register_memory),
            vaddr = (ulong)address,
            size = size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &param);
        if (rc >= 0)
        {
            return;
        }
        if (quietly)
        {
            SpaprTceLog.Failed(Logger, UnregisterOperation, Name, (Errno)(-rc));
            return;
        }
        throw new VfioDmaException(DmaMappingFailure.Kernel, UnregisterOperation, Name,
            string.Create(CultureInfo.InvariantCulture, $"unregistering 0x{size:x} bytes at host address 0x{(ulong)address:x} failed: {(Errno)(-rc)}"),
            "The container's pre-registrations no longer match the DMA space's book; detach the devices and attach them again.",
            (Errno)(-rc));
    }

    private VfioDmaException RegisterFailed(Errno errno, in DmaMapping mapping)
    {
        string detail = string.Create(CultureInfo.InvariantCulture,
            $"pre-registering 0x{mapping.Size:x} bytes at host address 0x{(ulong)mapping.HostAddress:x} (for IOVA 0x{mapping.Iova:x}) failed: {errno}");
        return errno switch
        {
            Errno.ENOMEM => new VfioDmaException(DmaMappingFailure.LimitReached, RegisterOperation, Name,
                detail + " (pre-registration pins the memory and accounts it against the locked-memory limit RLIMIT_MEMLOCK)", MemlockFix, errno),
            Errno.EBUSY => new VfioDmaException(DmaMappingFailure.Overlap, RegisterOperation, Name,
                detail + " (this container already has exactly that memory pre-registered, by another user of its fd)",
                "Unregister it (VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY) where it was registered, or let only the DMA space register the container's memory.", errno),
            Errno.EINVAL => new VfioDmaException(DmaMappingFailure.Overlap, RegisterOperation, Name,
                detail + " (the memory overlaps a region this process pre-registered with other bounds, or is not page-aligned)",
                "Map memory in the same extents it was first mapped with (a region is registered whole), and page-aligned.", errno),
            _ => new VfioDmaException(DmaMappingFailure.Kernel, RegisterOperation, Name, detail, hint: null, errno),
        };
    }

    private VfioDmaException MapFailed(int rc, in DmaMapping mapping)
    {
        var errno = rc < 0 ? (Errno)(-rc) : Errno.EINVAL;
        string detail = string.Create(CultureInfo.InvariantCulture,
            $"mapping IOVA 0x{mapping.Iova:x} of 0x{mapping.Size:x} bytes at host address 0x{(ulong)mapping.HostAddress:x} failed: {(rc > 0 ? "the IOVA is not aligned to a TCE of an open window" : errno.ToString())}");
        if (IsV2 && mapping.Kind == DmaSectionKind.DeviceMemory && errno == Errno.EINVAL)
        {
            return new VfioDmaException(DmaMappingFailure.Kernel, MapOperation, Name,
                detail + " (sPAPR TCE v2 maps only pre-registered memory, and another device's memory cannot be pre-registered)",
                "Peer-to-peer DMA to device memory is not possible on an sPAPR TCE v2 container; map RAM (DmaSectionKind.Ram), which is pre-registered automatically.",
                errno);
        }
        return errno switch
        {
            Errno.ENXIO => new VfioDmaException(DmaMappingFailure.OutsideIovaRanges, MapOperation, Name,
                detail + " (no DMA window covers the IOVA)", "Map inside the container's windows (its IOVA ranges).", errno),
            Errno.EPERM => new VfioDmaException(DmaMappingFailure.Kernel, MapOperation, Name,
                detail + " (the container is not enabled: v1 needs VFIO_IOMMU_ENABLE, v2 a pre-registration)", "Attach the device again; the container was not set up.", errno),
            Errno.ENOMEM => new VfioDmaException(DmaMappingFailure.LimitReached, MapOperation, Name,
                detail + " (pinning the pages exceeds the locked-memory limit RLIMIT_MEMLOCK)", MemlockFix, errno),
            _ => new VfioDmaException(DmaMappingFailure.Kernel, MapOperation, Name, detail, hint: null, errno),
        };
    }

    /// <summary>One window: its geometry and the space's mappings in it.</summary>
    private sealed class Window(ulong start, ulong size, int pageShift, int levels)
    {
        internal ulong Start { get; } = start;

        internal ulong Size { get; } = size;

        internal int PageShift { get; } = pageShift;

        internal int Levels { get; } = levels;

        internal int Users { get; set; }

        internal bool Fixed { get; init; }

        /// <summary>The kernel's table slot (<c>container-&gt;tables[]</c>) the window was created in.</summary>
        internal int Slot { get; set; }

        internal bool Covers(ulong iova, ulong size) => iova >= Start && size <= Size && iova - Start <= Size - size;
    }
}
