// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>The IOMMU a simulated machine has.</summary>
public enum SimulatedIommu
{
    /// <summary>An x86/arm64-style IOMMU: the Type1 backend (v1 and v2) serves legacy containers.</summary>
    Type1,
    /// <summary>A POWER host: the sPAPR TCE backend (v1 and v2) instead of Type1; iommufd and device cdevs are not
    /// available (6.12 supports neither on sPAPR).</summary>
    SpaprTce,
    /// <summary>No IOMMU: only no-IOMMU mode (if enabled) can give devices to user space.</summary>
    None,
}

/// <summary>The platform code behind a simulated POWER host's sPAPR TCE backend.</summary>
public enum SimulatedSpaprPlatform
{
    /// <summary>Bare-metal POWER9 (PowerNV, OPAL IODA2 PHB): a 2 GiB 32-bit window, windows of any supported page
    /// size in either slot (slot 0 at bus address 0, slot 1 at 1&lt;&lt;59), multi-level tables (1 to 5 levels) and an
    /// EEH PE per group. Modelled from the kernel's source only: no such host could run here.</summary>
    PowerNv,

    /// <summary>A pseries (PAPR) guest, as probed on Linux 6.12 under QEMU 10's <c>pseries</c> machine: a 1 GiB
    /// 32-bit window; slot 0 is re-created at bus address 0 only for 4 KiB pages and at most the 32-bit window's size,
    /// every other window is the hypervisor's one 64-bit window at 1&lt;&lt;59 (a second one fails with ENODEV and
    /// marks the PE failed until reboot); tables of 0 or 1 level; a TCE the hypervisor refuses gives errno 4
    /// (H_PARAMETER returned as is); no EEH PE for an emulated device.</summary>
    PSeries,
}

/// <summary>
/// What a simulated machine is: its kernel's features and its devices with their IOMMU groups and drivers. The
/// simulated /dev and /sys are generated from it.
/// </summary>
/// <example>
/// <code>
/// var topology = new SimulatedTopology()
///     .AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice())
///     .AddPci("0000:00:03.0", iommuGroup: 2, model: null, driver: "nvme");   // group 2 not viable
/// using var kernel = new SimulatedKernel(topology);
/// </code>
/// </example>
public sealed class SimulatedTopology
{
    private readonly List<SimulatedDeviceSpec> _devices = [];

    /// <summary>The IOMMU the machine has.</summary>
    public SimulatedIommu Iommu { get; set; } = SimulatedIommu.Type1;

    /// <summary><c>CONFIG_IOMMUFD</c>: <c>/dev/iommu</c> exists.</summary>
    public bool IommuFd { get; set; } = true;

    /// <summary><c>CONFIG_VFIO_DEVICE_CDEV</c>: VFIO devices have <c>/dev/vfio/devices/vfioN</c>.</summary>
    public bool DeviceCdev { get; set; } = true;

    /// <summary><c>CONFIG_VFIO_CONTAINER</c>: <c>/dev/vfio/vfio</c> exists (served by VFIO).</summary>
    public bool LegacyContainer { get; set; } = true;

    /// <summary><c>vfio.enable_unsafe_noiommu_mode=1</c>: devices without an IOMMU get no-IOMMU groups.</summary>
    public bool UnsafeNoIommuMode { get; set; }

    /// <summary>The IOMMU remaps interrupts (Type1's SET_IOMMU fails with EPERM without it).</summary>
    public bool InterruptRemapping { get; set; } = true;

    /// <summary><c>vfio_iommu_type1.allow_unsafe_interrupts=1</c>.</summary>
    public bool AllowUnsafeInterrupts { get; set; }

    /// <summary><c>iommufd.allow_unsafe_interrupts=1</c>: without interrupt remapping, VFIO_DEVICE_BIND_IOMMUFD binds
    /// instead of failing with EPERM (iommufd_device_bind).</summary>
    public bool IommuFdAllowUnsafeInterrupts { get; set; }

    /// <summary><c>vfio_iommu_type1.dma_entry_limit</c> (default 65535).</summary>
    public int DmaEntryLimit { get; set; } = ushort.MaxValue;

    /// <summary>The platform code of a POWER host (<see cref="SimulatedIommu.SpaprTce"/>): where its windows go, its
    /// 32-bit window, its TCE table rules and the defaults of <see cref="SpaprPageSizes"/>, <see cref="SpaprMaxLevels"/>
    /// and <see cref="Eeh"/>. Default <see cref="SimulatedSpaprPlatform.PowerNv"/> (an EEH-capable host).</summary>
    public SimulatedSpaprPlatform SpaprPlatform { get; set; } = SimulatedSpaprPlatform.PowerNv;

    /// <summary>The host has an EEH PE for each group (<c>eeh_enabled()</c> and <c>eeh_iommu_group_to_pe</c>):
    /// CHECK_EXTENSION(VFIO_EEH) is 1 and the PE operations work. Without it CHECK_EXTENSION(VFIO_EEH) is 0 and every
    /// VFIO_EEH_PE_OP fails with ENODEV before its argument is read (as on the probed pseries guest). Default: true on
    /// <see cref="SimulatedSpaprPlatform.PowerNv"/>, false on <see cref="SimulatedSpaprPlatform.PSeries"/>. Only
    /// meaningful with <see cref="SimulatedIommu.SpaprTce"/>.</summary>
    public bool Eeh
    {
        get => _eeh ?? SpaprPlatform == SimulatedSpaprPlatform.PowerNv;
        set => _eeh = value;
    }

    /// <summary>Model switch, off by default (Linux offers both): the sPAPR TCE backend offers only v1
    /// (<c>VFIO_SPAPR_TCE_IOMMU</c>), not v2, to exercise a library's fallback.</summary>
    public bool SpaprTceV1Only { get; set; }

    /// <summary>The sPAPR v2 dynamic-window page sizes (<c>ddw.pgsizes</c>). Default: a POWER9 PHB's 4K/64K/2M/1G on
    /// <see cref="SimulatedSpaprPlatform.PowerNv"/>; 4K/64K/2M/16M (0x1211000) on <see cref="SimulatedSpaprPlatform.PSeries"/>,
    /// as probed.</summary>
    public ulong SpaprPageSizes
    {
        get => _spaprPageSizes ?? (SpaprPlatform == SimulatedSpaprPlatform.PSeries ? PSeriesPageSizes : PowerNvPageSizes);
        set => _spaprPageSizes = value;
    }

    /// <summary>The sPAPR v2 window count (<c>ddw.max_dynamic_windows_supported</c>): 2 on PowerNV
    /// (IOMMU_TABLE_GROUP_MAX_TABLES) and on the probed pseries guest, 1 on a platform without a second window. 1 or 2.</summary>
    public int SpaprWindows
    {
        get;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 2);
            field = value;
        }
    } = 2;

    /// <summary>The sPAPR v2 TCE table level limit (<c>ddw.levels</c>). Default: 5 on PowerNV
    /// (POWERNV_IOMMU_MAX_LEVELS), 1 on pseries (as probed). 1 to 5.</summary>
    public uint SpaprMaxLevels
    {
        get => _spaprMaxLevels ?? (SpaprPlatform == SimulatedSpaprPlatform.PSeries ? 1u : 5u);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1u);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 5u);
            _spaprMaxLevels = value;
        }
    }

    private const ulong PowerNvPageSizes = (1UL << 12) | (1UL << 16) | (1UL << 21) | (1UL << 30);
    private const ulong PSeriesPageSizes = (1UL << 12) | (1UL << 16) | (1UL << 21) | (1UL << 24);
    private bool? _eeh;
    private ulong? _spaprPageSizes;
    private uint? _spaprMaxLevels;

    /// <summary>The process's RLIMIT_MEMLOCK in bytes for pinned DMA memory (default: unlimited).</summary>
    public ulong MemlockLimit { get; set; } = ulong.MaxValue;

    /// <summary>The process has <c>CAP_SYS_RAWIO</c> (needed for no-IOMMU groups) — a root process does.</summary>
    public bool Privileged { get; set; } = true;

    /// <summary>The process has <c>CAP_SYS_ADMIN</c> — a root process does. Without it <c>/proc/self/pagemap</c> shows
    /// page frame numbers as 0 (fs/proc/task_mmu.c: <c>pm.show_pfn = file_ns_capable(file, &amp;init_user_ns, CAP_SYS_ADMIN)</c>,
    /// the credentials of whoever opened the file). Read when the file is opened, so a test may change it between opens.</summary>
    public bool CapSysAdmin { get; set; } = true;

    /// <summary>The page allocator hands out no two consecutive frames (a fragmented machine): a locked buffer of several
    /// pages is never physically contiguous. Off by default: fresh locks get consecutive frames, as seen on the testbed.</summary>
    public bool ScatteredPhysicalPages { get; set; }

    /// <summary>The devices, in the order they were added.</summary>
    public IReadOnlyList<SimulatedDeviceSpec> Devices => _devices;

    /// <summary>Adds a PCI device.</summary>
    /// <param name="address">Its PCI address, <c>DDDD:BB:DD.F</c>.</param>
    /// <param name="iommuGroup">Its IOMMU group number (ignored in no-IOMMU mode, where each device gets its own).</param>
    /// <param name="model">The device model; null for a device that is only seen, not usable (bound to another driver, or
    /// a bridge).</param>
    /// <param name="driver">The driver it is bound to: <c>vfio-pci</c> (default), another name (e.g. <c>nvme</c>), or empty for none.</param>
    /// <param name="bridge">The PCI bridge it sits behind (a device added before it), which places its sysfs folder
    /// below the bridge's as Linux does; null for a device on the root bus. The IOMMU group is still
    /// <paramref name="iommuGroup"/>: give the devices behind a conventional PCI bridge the bridge's group, as Linux
    /// does (they share its requester ID).</param>
    /// <param name="identity">For a device without a model: what its sysfs <c>vendor</c>, <c>device</c>, <c>class</c>, ...
    /// say (e.g. <see cref="SimulatedPciIdentity.QemuPciBridge"/>); null leaves them out. A model gives its own.</param>
    /// <returns>This topology.</returns>
    public SimulatedTopology AddPci(string address, int iommuGroup, EmulatedDevice? model, string driver = "vfio-pci", string? bridge = null,
        SimulatedPciIdentity? identity = null)
    {
        if (identity is not null && model is not null)
        {
            throw new ArgumentException($"'{address}' has a model, which gives its identity; pass an identity only for a device without one.", nameof(identity));
        }
        if (bridge is not null && !_devices.Any(d => d.Name == bridge && d.Bus == SimulatedBus.Pci))
        {
            throw new ArgumentException($"The bridge '{bridge}' of '{address}' is not a PCI device added before it.", nameof(bridge));
        }
        Add(new SimulatedDeviceSpec(address, SimulatedBus.Pci, iommuGroup, model, driver, bridge, identity));
        return this;
    }

    /// <summary>Adds a platform device.</summary>
    /// <param name="name">Its platform device name, e.g. <c>LNRO0005:00</c>.</param>
    /// <param name="iommuGroup">Its IOMMU group number.</param>
    /// <param name="model">The device model; null for a device bound elsewhere.</param>
    /// <param name="driver">The driver it is bound to: <c>vfio-platform</c> (default) or another.</param>
    /// <returns>This topology.</returns>
    public SimulatedTopology AddPlatform(string name, int iommuGroup, EmulatedDevice? model, string driver = "vfio-platform")
    {
        Add(new SimulatedDeviceSpec(name, SimulatedBus.Platform, iommuGroup, model, driver));
        return this;
    }

    private void Add(SimulatedDeviceSpec spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec.Name);
        if (spec.Name.Contains('/', StringComparison.Ordinal) || spec.Name.Contains("..", StringComparison.Ordinal))
        {
            throw new ArgumentException($"A device name may not contain '/' or '..': '{spec.Name}'.", nameof(spec));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(spec.IommuGroup);
        if (_devices.Any(d => d.Name == spec.Name))
        {
            throw new ArgumentException($"The device '{spec.Name}' was added twice.", nameof(spec));
        }
        bool vfioDriver = spec.Driver is "vfio-pci" or "vfio-platform";
        if (vfioDriver && spec.Model is null)
        {
            throw new ArgumentException($"'{spec.Name}' is bound to {spec.Driver} but has no device model to serve it.", nameof(spec));
        }
        _devices.Add(spec);
    }
}

/// <summary>A device of a <see cref="SimulatedTopology"/>.</summary>
/// <param name="Name">PCI address or platform device name.</param>
/// <param name="Bus">Its bus.</param>
/// <param name="IommuGroup">Its IOMMU group number.</param>
/// <param name="Model">Its model, or null.</param>
/// <param name="Driver">The driver it is bound to.</param>
/// <param name="Bridge">The PCI bridge it sits behind, or null.</param>
/// <param name="Identity">The sysfs identity of a PCI device without a model, or null.</param>
public sealed record SimulatedDeviceSpec(string Name, SimulatedBus Bus, int IommuGroup, EmulatedDevice? Model, string Driver, string? Bridge = null,
    SimulatedPciIdentity? Identity = null);
