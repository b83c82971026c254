// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.SpaprTce;

/// <summary>
/// A legacy container whose IOMMU is sPAPR TCE (POWER), as QEMU's sPAPR container derives from its legacy one.
/// </summary>
/// <remarks>
/// <para><b>v2</b> (<c>VFIO_SPAPR_TCE_v2_IOMMU</c>, preferred): <c>VFIO_IOMMU_SPAPR_TCE_GET_INFO</c> gives the
/// dynamic-window limits (page sizes, window count, levels); the default 32-bit window is removed at once, and windows
/// are created on demand for the sections mapped into them (<see cref="DmaContainer.OpenDmaWindow"/>) and removed
/// with their last section. Every RAM section is pre-registered (<c>VFIO_IOMMU_SPAPR_REGISTER_MEMORY</c>) before it
/// is mapped and unregistered after it is unmapped.</para>
/// <para><b>v1</b> (<c>VFIO_SPAPR_TCE_IOMMU</c>): <c>VFIO_IOMMU_ENABLE</c> and the platform's fixed 32-bit window of
/// 4 KiB TCEs; one group per container (the kernel refuses a second; the backend then gives that group a container of
/// its own).</para>
/// <para><b>EEH</b>: the PE operations apply to every group of the container, so they are offered only while it has
/// exactly one group.</para>
/// </remarks>
public sealed partial class SpaprTceContainer : LegacyContainer
{
    /// <summary>The bus address at which the sPAPR platforms (PowerNV's <c>tce_bypass_base</c>, QEMU's pseries PHB
    /// <c>dma64_win_addr</c>) place the second DMA window: 1 &lt;&lt; 59.</summary>
    public const ulong HighWindowStart = 1UL << 59;

    /// <summary>The largest high window the library asks for (1 TiB); the platform may refuse less.</summary>
    public const ulong HighWindowLimit = 1UL << 40;

    private const string InfoOperation = "VFIO_IOMMU_SPAPR_TCE_GET_INFO";
    private const string EnableOperation = "VFIO_IOMMU_ENABLE";
    private const string MapOperation = "VFIO_IOMMU_MAP_DMA";
    private const string UnmapOperation = "VFIO_IOMMU_UNMAP_DMA";

    private readonly Dictionary<(nint Address, ulong Size), int> _registered = [];
    private bool _infoRead;
    private bool _enabled;

    internal SpaprTceContainer(LegacyBackend backend, DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
        : base(backend, space, containerFd, ownsContainerFd, iommuType)
    {
    }

    /// <summary>True for sPAPR TCE v2 (dynamic windows, pre-registration); false for v1.</summary>
    public bool IsV2 => IommuType == VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU;

    /// <summary>The bus address of the platform's default 32-bit window.</summary>
    public ulong Dma32WindowStart { get; private set; }

    /// <summary>The size in bytes of the platform's default 32-bit window.</summary>
    public ulong Dma32WindowSize { get; private set; }

    /// <summary>The IOMMU page sizes the host offers for windows (bit n: 2^n bytes); 4 KiB for v1.</summary>
    public ulong HostPageSizes { get; private set; } = 4096;

    /// <summary>How many DMA windows the host lets the container have at once (v2); 1 for v1.</summary>
    public int MaxWindows { get; private set; } = 1;

    /// <summary>The most TCE table levels the host accepts for a window (v2); 1 for v1.</summary>
    public int MaxLevels { get; private set; } = 1;

    /// <summary>The number of memory regions this container pre-registered (v2).</summary>
    public int PreRegisteredRegions => _registered.Count;

    /// <summary>The bytes of memory this container pre-registered (v2).</summary>
    public ulong PreRegisteredBytes
    {
        get
        {
            ulong total = 0;
            foreach ((nint _, ulong size) in _registered.Keys)
            {
                total += size;
            }
            return total;
        }
    }

    /// <summary>Selects the sPAPR IOMMU (<c>VFIO_SET_IOMMU</c>) and notes whether the host offers EEH.</summary>
    /// <exception cref="VfioException">The kernel refused.</exception>
    protected override void SetIommu()
    {
        base.SetIommu();
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_EEH);
        if (rc > 0)
        {
            Features |= IommuBackendFeatures.Eeh;
        }
    }

    /// <summary>Reads the windows' limits (<c>VFIO_IOMMU_SPAPR_TCE_GET_INFO</c>); v1 enables the container on its
    /// 32-bit window, v2 removes the default window and opens windows on demand from then on.</summary>
    /// <exception cref="VfioException">The kernel refused (ENOMEM on enable: the locked-memory limit).</exception>
    protected override unsafe void ReadInfo()
    {
        if (_infoRead)
        {
            return;
        }
        var info = new vfio_iommu_spapr_tce_info { argsz = (uint)sizeof(vfio_iommu_spapr_tce_info) };
        VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info), InfoOperation, Name);
        Dma32WindowStart = info.dma32_window_start;
        Dma32WindowSize = info.dma32_window_size;
        if (!IsV2)
        {
            EnableV1();
            _infoRead = true;
            AddFixedWindow(Dma32WindowStart, Dma32WindowSize);
            SetLimits(4096, [IovaRange.FromStartSize(Dma32WindowStart, Dma32WindowSize)]);
            return;
        }
        if ((info.flags & VfioUapi.VFIO_IOMMU_SPAPR_INFO_DDW) == 0 || info.ddw.pgsizes == 0 || info.ddw.max_dynamic_windows_supported == 0)
        {
            throw new VfioException(InfoOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"the sPAPR TCE v2 container reports no dynamic DMA windows (flags 0x{info.flags:x}, page sizes 0x{info.ddw.pgsizes:x}, {info.ddw.max_dynamic_windows_supported} windows)"),
                "The platform does not offer DDW to this group; use a host (or a guest with a DDW-capable PHB) that does.");
        }
        HostPageSizes = info.ddw.pgsizes;
        MaxWindows = (int)Math.Min(info.ddw.max_dynamic_windows_supported, 64u);
        MaxLevels = (int)Math.Max(1u, Math.Min(info.ddw.levels, 64u));
        // As QEMU: the default window goes at once, so every window is one this container opened for its sections.
        RemoveWindowOrThrow(Dma32WindowStart);
        _infoRead = true;
        OpensDmaWindows = true;
        Features |= IommuBackendFeatures.DmaWindows | IommuBackendFeatures.MemoryPreRegistration;
        SetLimits(SpacePageSizes(HostPageSizes), [], OpenableRanges());
    }

    /// <inheritdoc/>
    protected override unsafe void MapCore(in DmaMapping mapping)
    {
        bool register = IsV2 && mapping.Kind == DmaSectionKind.Ram;
        if (register)
        {
            Register(mapping);
        }
        var map = new vfio_iommu_type1_dma_map
        {
            argsz = (uint)sizeof(vfio_iommu_type1_dma_map),
            flags = (((mapping.Access & DmaAccess.Read) != 0) ? VfioUapi.VFIO_DMA_MAP_FLAG_READ : 0)
                | (((mapping.Access & DmaAccess.Write) != 0) ? VfioUapi.VFIO_DMA_MAP_FLAG_WRITE : 0),
            vaddr = (ulong)mapping.HostAddress,
            iova = mapping.Iova,
            size = mapping.Size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_MAP_DMA, &map);
        if (rc != 0)
        {
            if (register)
            {
                Unregister(mapping, quietly: true);
            }
            throw MapFailed(rc, mapping);
        }
    }

    /// <inheritdoc/>
    protected override unsafe void UnmapCore(in DmaMapping mapping)
    {
        var unmap = new vfio_iommu_type1_dma_unmap
        {
            argsz = (uint)sizeof(vfio_iommu_type1_dma_unmap),
            iova = mapping.Iova,
            size = mapping.Size,
        };
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, &unmap);
        if (rc != 0)
        {
            throw new VfioDmaException(DmaMappingFailure.Kernel, UnmapOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"unmapping IOVA 0x{mapping.Iova:x} of 0x{mapping.Size:x} bytes failed: {(rc < 0 ? ((Errno)(-rc)).ToString() : "the IOVA is not a TCE of an open window")}"),
                "The container's TCEs no longer match the DMA space's book; detach the devices and attach them again.",
                rc < 0 ? (Errno)(-rc) : Errno.EINVAL);
        }
        if (IsV2 && mapping.Kind == DmaSectionKind.Ram)
        {
            Unregister(mapping, quietly: false);
        }
    }

    /// <summary>Removes the windows and pre-registrations left (the kernel would drop them with an owned fd; a passed
    /// fd stays open), disables a v1 container, then unsets and closes the groups and the fd.</summary>
    protected override void ReleaseCore()
    {
        if (Groups.Count > 0)
        {
            CloseAllWindows();
            foreach ((nint address, ulong size) in _registered.Keys.ToArray())
            {
                UnregisterRegion(address, size, quietly: true);
            }
            _registered.Clear();
            if (_enabled && Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_DISABLE, 0) is int rc && rc < 0)
            {
                SpaprTceLog.Failed(Logger, "VFIO_IOMMU_DISABLE", Name, (Errno)(-rc));
            }
            _enabled = false;
        }
        base.ReleaseCore();
    }

    private void EnableV1()
    {
        if (_enabled)
        {
            return;
        }
        int rc = Kernel.Ioctl(Fd, VfioUapi.VFIO_IOMMU_ENABLE, 0);
        if (rc == -(int)Errno.ENOMEM)
        {
            throw new VfioException(EnableOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"enabling the sPAPR TCE v1 container accounts its whole 32-bit window (0x{Dma32WindowSize:x} bytes) against the locked-memory limit RLIMIT_MEMLOCK, which is too low"),
                MemlockFix);
        }
        VfioException.ThrowIfFailed(rc, EnableOperation, Name);
        _enabled = true;
    }

    /// <summary>The page sizes the space may use: the host's, from the process's base page up (smaller TCEs could not
    /// be pre-registered, which the kernel does in base pages); all of them when the host has none that large.</summary>
    private static ulong SpacePageSizes(ulong host)
    {
        ulong basePage = (ulong)Environment.SystemPageSize;
        ulong usable = host & ~(basePage - 1);
        return usable != 0 ? usable : host;
    }

    private const string MemlockFix =
        "Raise the locked-memory limit to cover the pre-registered memory and the TCE tables: ulimit -l, LimitMEMLOCK= in the systemd unit, or memlock in /etc/security/limits.conf (or grant CAP_IPC_LOCK).";
}
