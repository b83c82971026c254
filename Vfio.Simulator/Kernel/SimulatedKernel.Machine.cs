// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    internal const uint MiscMajor = 10;
    internal const uint VfioContainerMinor = 196;
    internal const uint IommuMinor = 123;
    internal const uint VfioGroupMajor = 244;
    internal const uint VfioCdevMajor = 236;

    private readonly Dictionary<int, SimGroup> _groups = [];
    private readonly Dictionary<string, SimDevice> _devices = new(StringComparer.Ordinal);

    /// <summary>Creates a machine from <paramref name="topology"/>: its devices, groups, /dev and /sys.</summary>
    /// <param name="topology">What the machine is; later changes to it have no effect.</param>
    public SimulatedKernel(SimulatedTopology topology)
        : this()
    {
        ArgumentNullException.ThrowIfNull(topology);
        Topology = topology;
        IommuBackends = CreateBackends();
        Build();
        AddHostFacts();
    }

    /// <summary>The machine's description.</summary>
    public SimulatedTopology Topology { get; } = new();

    /// <summary>The legacy IOMMU backends this kernel registered, in the order CHECK_EXTENSION polls them.</summary>
    internal IReadOnlyList<IommuBackendRegistration> IommuBackends { get; } = [];

    private List<IommuBackendRegistration> CreateBackends()
    {
        var backends = new List<IommuBackendRegistration>();
        if (Topology.Iommu == SimulatedIommu.Type1)
        {
            backends.Add(Type1Driver.Registration(this));
        }
        else if (Topology.Iommu == SimulatedIommu.SpaprTce)
        {
            backends.Add(SpaprTceDriver.Registration(this));
        }
        if (Topology.UnsafeNoIommuMode)
        {
            backends.Add(NoIommuDriver.Registration(this));
        }
        return backends;
    }

    private void Build()
    {
        int nextNoIommuGroup = 0;
        int nextCdev = 0;
        foreach (SimulatedDeviceSpec spec in Topology.Devices)
        {
            // Without an IOMMU, a device has no IOMMU group unless no-IOMMU mode gives a VFIO-bound one a fake group.
            bool vfio = spec.Model is not null && spec.Driver is "vfio-pci" or "vfio-platform";
            bool noIommu = Topology.Iommu == SimulatedIommu.None;
            SimGroup? group = null;
            if (!noIommu)
            {
                if (!_groups.TryGetValue(spec.IommuGroup, out group))
                {
                    group = new SimGroup(spec.IommuGroup, noIommu: false);
                    _groups[spec.IommuGroup] = group;
                }
            }
            else if (vfio && Topology.UnsafeNoIommuMode)
            {
                while (_groups.ContainsKey(nextNoIommuGroup))
                {
                    nextNoIommuGroup++;
                }
                group = new SimGroup(nextNoIommuGroup, noIommu: true);
                _groups[group.Id] = group;
            }
            VfioBusDriver? driver = vfio && group is not null ? spec.Model!.CreateVfioDriver() : null;
            string? parent = spec.Bridge is null ? null : _devices[spec.Bridge].SysfsPath;
            var device = new SimDevice(this, spec.Name, spec.Bus, group ?? new SimGroup(-1, noIommu: false), spec.Driver, driver, parent);
            group?.Devices.Add(device);
            _devices[spec.Name] = device;
            if (driver is not null && Topology.DeviceCdev && !group!.NoIommu && Topology.Iommu != SimulatedIommu.SpaprTce)
            {
                device.CdevIndex = nextCdev++;
            }
            AddDeviceToSysfs(device, spec, group);
        }

        foreach (SimGroup group in _groups.Values.Where(g => g.Devices.Any(d => d.IsVfio)))
        {
            SimGroup captured = group;
            string sysfs = $"/sys/devices/virtual/vfio/{group.NodeName}";
            AddCharDevice($"/dev/vfio/{group.NodeName}", VfioGroupMajor, (uint)group.Id, sysfs, () => GroupFile.Open(this, captured));
        }
        if (Topology.LegacyContainer)
        {
            AddCharDevice("/dev/vfio/vfio", MiscMajor, VfioContainerMinor, "/sys/devices/virtual/misc/vfio", () => (0, new ContainerFile(this)));
        }
        if (Topology.IommuFd && Topology.Iommu != SimulatedIommu.SpaprTce)
        {
            AddCharDevice("/dev/iommu", MiscMajor, IommuMinor, "/sys/devices/virtual/misc/iommu", () => (0, new IommuFdFile(this)));
        }
        foreach (SimDevice device in _devices.Values.Where(d => d.CdevIndex is not null))
        {
            SimDevice captured = device;
            string name = $"vfio{device.CdevIndex}";
            AddCharDevice($"/dev/vfio/devices/{name}", VfioCdevMajor, (uint)device.CdevIndex!.Value, $"{device.SysfsPath}/vfio-dev/{name}",
                () => DeviceCdevFile.Open(this, captured));
        }
    }

    private void AddDeviceToSysfs(SimDevice device, SimulatedDeviceSpec spec, SimGroup? group)
    {
        string bus = spec.Bus == SimulatedBus.Pci ? "pci" : "platform";
        string path = device.SysfsPath;
        _fs.AddDirectory(path);
        IReadOnlyDictionary<string, string>? attributes = spec.Model?.SysfsAttributes ?? spec.Identity?.ToSysfsAttributes();
        if (attributes is not null)
        {
            foreach ((string name, string value) in attributes)
            {
                _fs.AddText($"{path}/{name}", value);
            }
        }
        // /sys/bus/<bus>/devices/<name> -> ../../../devices/<...>/<name>
        string relativeDevice = path["/sys/".Length..];
        _fs.AddLink($"/sys/bus/{bus}/devices/{device.Name}", $"../../../{relativeDevice}");
        // Links from the device's folder climb to /sys: ../../../ for /sys/devices/pci0000:00/<name>, one more per bridge.
        string up = string.Concat(Enumerable.Repeat("../", relativeDevice.Count(static c => c == '/') + 1));
        if (!string.IsNullOrEmpty(spec.Driver))
        {
            _fs.AddLink($"{path}/driver", $"{up}bus/{bus}/drivers/{spec.Driver}");
            _fs.AddLink($"/sys/bus/{bus}/drivers/{spec.Driver}/{device.Name}", $"../../../../{relativeDevice}");
        }
        if (group is not null)
        {
            _fs.AddLink($"{path}/iommu_group", $"{up}kernel/iommu_groups/{group.Id}");
            _fs.AddLink($"/sys/kernel/iommu_groups/{group.Id}/devices/{device.Name}", $"../../../../{relativeDevice}");
            // iommu_group_show_type: the default domain's type. Debian's x86 kernels (and the testbed's) default to lazy
            // invalidation (CONFIG_IOMMU_DEFAULT_DMA_LAZY), "DMA-FQ"; vfio's fake no-IOMMU groups have no default
            // domain, "unknown".
            _fs.AddText($"/sys/kernel/iommu_groups/{group.Id}/type", group.NoIommu ? "unknown" : "DMA-FQ");
            if (group.NoIommu)
            {
                _fs.AddText($"/sys/kernel/iommu_groups/{group.Id}/name", "vfio-noiommu");
            }
        }
    }

    /// <summary>Adds a character device node, its sysfs folder with <c>dev</c>, and the <c>/sys/dev/char</c> link.</summary>
    private void AddCharDevice(string node, uint major, uint minor, string sysfsPath, Func<(int Result, SimFile? File)> open)
    {
        string number = $"{major}:{minor}";
        _fs.AddDevice(node, new VirtualFileSystem.DeviceNode(major, minor, open));
        _fs.AddText($"{sysfsPath}/dev", number);
        _fs.AddLink($"/sys/dev/char/{number}", $"../..{sysfsPath["/sys".Length..]}");
    }

    /// <summary>The simulated file an fd number refers to (the kernel's <c>fdget</c>), or null for a real file.</summary>
    internal SimFile? ResolveFd(int fd) => _fds.Resolve(fd);

    /// <summary>Creates an fd for a new simulated file (e.g. a device fd) and returns its number, owned by the caller.</summary>
    internal int InstallFd(SimFile file) => _fds.Install(file);

    /// <summary>Whether <paramref name="fd"/> is an open fd of this process.</summary>
    internal static bool IsOpenFd(int fd) => fd >= 0 && Libc.fcntl(fd, Libc.F_GETFD, 0) >= 0;

    /// <summary>The device named <paramref name="name"/>, for tests and device models.</summary>
    internal SimDevice? FindDevice(string name) => _devices.GetValueOrDefault(name);

    /// <summary>The IOMMU groups by number.</summary>
    internal IReadOnlyDictionary<int, SimGroup> Groups => _groups;

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
