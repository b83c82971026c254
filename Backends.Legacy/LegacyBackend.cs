// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.Legacy;

/// <summary>
/// The legacy VFIO backend: devices are opened through their IOMMU group (<c>/dev/vfio/N</c>), whose group is set
/// to a container (<c>/dev/vfio/vfio</c>) with the Type1 IOMMU (v2, else v1) or, with explicit opt-in, the no-IOMMU
/// backend. It reproduces QEMU's <c>vfio_attach_device</c>: one container per DMA space, shared by the groups of
/// that space when the kernel allows it; a group belongs to one space; a container is released with its last device.
/// </summary>
/// <remarks>
/// <para>
/// Fds a management layer passed are used instead of opening nodes: <see cref="VfioOptions.ContainerFd"/> for the
/// first container (or <see cref="VfioOptions.IommuFd"/> with <see cref="VfioOptions.IommuFdAsContainer"/>) and
/// <see cref="VfioOptions.GroupFds"/> by group number. They are borrowed: never closed here.
/// </para>
/// <para>
/// A derived backend (sPAPR TCE) overrides <see cref="ChooseIommuType"/> and <see cref="CreateContainer"/> to
/// provide its own <see cref="LegacyContainer"/>.
/// </para>
/// <para>Thread-safe: attach and detach are serialized.</para>
/// </remarks>
public class LegacyBackend : IIommuBackend, IDisposable
{
    /// <summary>The backend's configuration name.</summary>
    public const string BackendName = "legacy";

    private const string AttachOperation = "attach device";
    private const string ContainerNode = "/dev/vfio/vfio";
    private const string IommuNode = "/dev/iommu";

    private readonly Lock _lock = new();
    private readonly Dictionary<int, LegacyGroup> _groups = [];
    private readonly Dictionary<string, LegacyAttachedDevice> _devices = new(StringComparer.Ordinal);
    private readonly VfioFdStore? _fdStore;
    private VfioFdStore? _ownStore;
    private LegacyContainer? _passedContainerUser;
    private bool _disposed;

    /// <summary>Creates the backend.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The configuration (no-IOMMU opt-in, passed fds, iommufd container mode); null for defaults.</param>
    /// <param name="fdStore">Where named passed fds are looked up; null when only inherited fd numbers are used.</param>
    /// <param name="logger">Where attaches, detaches and warnings are logged; null for none.</param>
    public LegacyBackend(IKernel kernel, VfioOptions? options = null, VfioFdStore? fdStore = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        Kernel = kernel;
        Options = options ?? new VfioOptions();
        _fdStore = fdStore;
        Logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc/>
    public virtual string Name => BackendName;

    /// <inheritdoc/>
    public virtual IommuBackendFeatures Features
        => IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.DirtyTracking | IommuBackendFeatures.PassedFds;

    /// <summary>The kernel port.</summary>
    protected internal IKernel Kernel { get; }

    /// <summary>The configuration.</summary>
    protected VfioOptions Options { get; }

    /// <summary>Where the backend logs.</summary>
    protected internal ILogger Logger { get; }

    private string ContainerPath => Options.IommuFdAsContainer ? IommuNode : ContainerNode;

    /// <inheritdoc/>
    public bool CanAttach(VfioDeviceSource device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DeviceFd is not null || device.SysfsPath is null)
        {
            reason = $"{device.Name} is a passed device cdev fd, which only the iommufd backend can use";
            return false;
        }
        bool passedContainer = Options.IommuFdAsContainer ? Options.IommuFd is not null : Options.ContainerFd is not null;
        if (!passedContainer && !Kernel.Exists(ContainerPath))
        {
            reason = Options.IommuFdAsContainer
                ? "/dev/iommu is missing (the kernel lacks CONFIG_IOMMUFD)"
                : "/dev/vfio/vfio is missing (the kernel lacks CONFIG_VFIO_CONTAINER, or vfio is not loaded)";
            return false;
        }
        if (VfioSysfs.GetIommuGroup(Kernel, device.SysfsPath) is not int group)
        {
            reason = $"{device.Name} has no IOMMU group (no IOMMU enabled, or no such device)";
            return false;
        }
        string key = group.ToString(CultureInfo.InvariantCulture);
        string? node = VfioSysfs.GetGroupNode(Kernel, group, out bool noIommu);
        if (Options.GroupFds.ContainsKey(key))
        {
            reason = $"{device.Name} is in IOMMU group {group}, whose fd was passed (Vfio:GroupFds:{key})";
            return true;
        }
        if (node is null)
        {
            reason = $"IOMMU group {group} of {device.Name} has no /dev/vfio node (no device of it is bound to a VFIO driver)";
            return false;
        }
        if (noIommu && !Options.AllowUnsafeNoIommu)
        {
            reason = $"IOMMU group {group} of {device.Name} is a no-IOMMU group and Vfio:AllowUnsafeNoIommu is not set";
            return false;
        }
        reason = $"{device.Name} is in IOMMU group {group} ({node}) and {ContainerPath} exists";
        return true;
    }

    /// <inheritdoc/>
    public AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(space);
        ObjectDisposedException.ThrowIf(space.IsDisposed, space);
        if (device.DeviceFd is not null || device.SysfsPath is null)
        {
            throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                "a device cdev fd was given, which only the iommufd backend can use (the legacy backend opens devices through their group)",
                "Use Vfio:Backend=iommufd for passed device fds, or pass the group fd (Vfio:GroupFds:N) instead.");
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_devices.TryGetValue(device.Name, out LegacyAttachedDevice? existing))
            {
                throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                    $"the device is already attached, to DMA space '{existing.Space.Name}' through {existing.Container.Name}",
                    "A device is attached once: use the AttachedDevice you have, or dispose it before attaching the device again.");
            }
            int number = FindGroup(device);
            CheckDriver(device);
            if (_groups.TryGetValue(number, out LegacyGroup? open))
            {
                LegacyContainer current = open.Container!;
                if (!ReferenceEquals(current.Space, space))
                {
                    throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                        $"its IOMMU group {number} is already in DMA space '{current.Space.Name}' (with {string.Join(", ", open.Devices.Select(static d => d.Name))}); a group can be in one DMA space only, so the device cannot join DMA space '{space.Name}'",
                        $"Attach every device of IOMMU group {number} to DMA space '{current.Space.Name}', or detach the others first.");
                }
                return OpenDevice(device, open, current);
            }
            LegacyGroup group = OpenGroup(device, number);
            LegacyContainer container;
            try
            {
                CheckViable(device, group);
                container = Connect(group, space);
            }
            catch
            {
                group.Close();
                throw;
            }
            _groups[number] = group;
            return OpenDevice(device, group, container);
        }
    }

    /// <inheritdoc/>
    public void DetachDevice(AttachedDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device is not LegacyAttachedDevice legacy || !ReferenceEquals(device.Backend, this))
        {
            throw new ArgumentException($"{device.Name} was attached by the {device.Backend.Name} backend{(device.Backend is LegacyBackend ? " (another instance)" : string.Empty)}, not by this one.", nameof(device));
        }
        if (!legacy.Detach())
        {
            return;
        }
        lock (_lock)
        {
            LegacyGroup group = legacy.Group;
            LegacyContainer container = legacy.LegacyContainer;
            try
            {
                legacy.Device.Dispose();
            }
            finally
            {
                container.Remove(legacy);
                group.Devices.Remove(legacy);
                _devices.Remove(legacy.Name);
                LegacyLog.Detached(Logger, legacy.Name, group.Number, container.Name);
                if (group.Devices.Count == 0)
                {
                    if (container.Devices.Count == 0)
                    {
                        // The container's last device: unmap everything, then unset and close the groups and the container.
                        container.Space.Leave(container);
                    }
                    else
                    {
                        container.RemoveGroup(group);
                        Forget(group);
                    }
                }
            }
        }
    }

    /// <summary>Detaches every device still attached through this backend (device fds first, then their groups and
    /// containers).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Detaches the remaining devices and closes the backend's own resources.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }
        LegacyAttachedDevice[] remaining;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            remaining = [.. _devices.Values];
        }
        foreach (LegacyAttachedDevice device in remaining)
        {
            try
            {
                DetachDevice(device);
            }
            catch (VfioException e)
            {
                LegacyLog.DetachOnDisposeFailed(Logger, device.Name, e);
            }
        }
        _ownStore?.Dispose();
    }

    /// <summary>
    /// Chooses the IOMMU type for a new container, as QEMU's <c>vfio_get_iommu_type</c>: Type1 v2, else Type1 v1,
    /// else sPAPR TCE v2, else sPAPR TCE v1; a container for a no-IOMMU group uses <c>VFIO_NOIOMMU_IOMMU</c>.
    /// </summary>
    /// <param name="containerFd">The new container's fd (no group set yet).</param>
    /// <param name="containerName">The container's name for messages.</param>
    /// <param name="noIommu">True when the first group is a no-IOMMU group.</param>
    /// <returns>The IOMMU type (a <c>VFIO_*_IOMMU</c> value of <c>linux/vfio.h</c>).</returns>
    /// <exception cref="VfioBackendUnavailableException">The container offers no usable IOMMU type.</exception>
    protected virtual uint ChooseIommuType(SafeFileHandle containerFd, string containerName, bool noIommu)
    {
        if (noIommu)
        {
            if (CheckExtension(containerFd, containerName, VfioUapi.VFIO_NOIOMMU_IOMMU))
            {
                return VfioUapi.VFIO_NOIOMMU_IOMMU;
            }
            throw new VfioBackendUnavailableException(Name,
                "the no-IOMMU container backend (the container does not offer VFIO_NOIOMMU_IOMMU)",
                hint: "Enable it with vfio.enable_unsafe_noiommu_mode=1 (a kernel built with CONFIG_VFIO_NOIOMMU).");
        }
        ReadOnlySpan<uint> preference =
        [
            VfioUapi.VFIO_TYPE1v2_IOMMU, VfioUapi.VFIO_TYPE1_IOMMU, VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU, VfioUapi.VFIO_SPAPR_TCE_IOMMU,
        ];
        foreach (uint type in preference)
        {
            if (CheckExtension(containerFd, containerName, type))
            {
                return type;
            }
        }
        throw new VfioBackendUnavailableException(Name,
            "a Type1 IOMMU (the container offers no IOMMU backend)",
            hint: "Enable the IOMMU: intel_iommu=on or amd_iommu=on on the kernel command line and VT-d/AMD-Vi in the firmware (arm64: an SMMU); check dmesg for DMAR/IOMMU messages.");
    }

    /// <summary>Creates the container object for <paramref name="iommuType"/>; a derived backend returns its own
    /// (sPAPR TCE). The base creates Type1 and no-IOMMU containers and refuses sPAPR.</summary>
    /// <param name="space">The space the container is for.</param>
    /// <param name="containerFd">The open container fd.</param>
    /// <param name="ownsContainerFd">False for a passed fd (borrowed).</param>
    /// <param name="iommuType">The type <see cref="ChooseIommuType"/> chose.</param>
    /// <returns>The container, with no group set yet.</returns>
    /// <exception cref="VfioBackendUnavailableException">This backend cannot drive <paramref name="iommuType"/>.</exception>
    protected virtual LegacyContainer CreateContainer(DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
    {
        if (iommuType is VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU or VfioUapi.VFIO_SPAPR_TCE_IOMMU)
        {
            throw new VfioBackendUnavailableException(Name, "a Type1 IOMMU (this host offers sPAPR TCE: use Vfio:Backend=spapr-tce)");
        }
        return new LegacyContainer(this, space, containerFd, ownsContainerFd, iommuType, Logger);
    }

    /// <summary>Forgets a group its container released.</summary>
    internal void Forget(LegacyGroup group)
    {
        lock (_lock)
        {
            if (_groups.TryGetValue(group.Number, out LegacyGroup? known) && ReferenceEquals(known, group))
            {
                _groups.Remove(group.Number);
            }
        }
    }

    /// <summary>A container was released: a passed container fd it used is free again.</summary>
    internal void ContainerReleased(LegacyContainer container)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_passedContainerUser, container))
            {
                _passedContainerUser = null;
            }
        }
    }

    private bool CheckExtension(SafeFileHandle containerFd, string containerName, uint extension)
    {
        int rc = Kernel.Ioctl(containerFd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)extension);
        if (rc < 0)
        {
            VfioException.Throw(rc, "VFIO_CHECK_EXTENSION", containerName);
        }
        return rc > 0;
    }

    private int FindGroup(VfioDeviceSource device)
    {
        string sysfs = device.SysfsPath!;
        if (!Kernel.Exists(sysfs))
        {
            throw new VfioDeviceUnusableException(AttachOperation, device.Name, $"there is no device {sysfs}",
                device.Bus == VfioBus.Pci ? "Check the address with lspci -D." : "Check the name in /sys/bus/platform/devices.");
        }
        return VfioSysfs.GetIommuGroup(Kernel, sysfs)
            ?? throw new VfioDeviceUnusableException(AttachOperation, device.Name, "the device has no IOMMU group",
                "Enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line, VT-d/AMD-Vi in the firmware) or, accepting unprotected DMA, no-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1 and Vfio:AllowUnsafeNoIommu=true).");
    }

    private void CheckDriver(VfioDeviceSource device)
    {
        string sysfs = device.SysfsPath!;
        string? driver = VfioSysfs.GetDriver(Kernel, sysfs);
        if (VfioSysfs.IsVfioDriver(driver))
        {
            return;
        }
        string bus = device.Bus == VfioBus.Pci ? "pci" : "platform";
        string vfio = device.Bus == VfioBus.Pci ? "vfio-pci" : "vfio-platform";
        string unbind = driver is null ? string.Empty : $"echo {device.Name} > {sysfs}/driver/unbind; ";
        throw VfioDeviceUnusableException.PciBridge(Kernel, AttachOperation, device) ?? new VfioDeviceUnusableException(AttachOperation, device.Name,
            driver is null ? "the device is bound to no driver, not to a VFIO driver" : $"the device is bound to {driver}, not to a VFIO driver",
            $"Bind it to {vfio}: echo {vfio} > {sysfs}/driver_override; {unbind}echo {device.Name} > /sys/bus/{bus}/drivers/{vfio}/bind (or driverctl set-override {device.Name} {vfio}).");
    }

    private LegacyGroup OpenGroup(VfioDeviceSource device, int number)
    {
        string key = number.ToString(CultureInfo.InvariantCulture);
        string? node = VfioSysfs.GetGroupNode(Kernel, number, out bool noIommu);
        if (noIommu && !Options.AllowUnsafeNoIommu)
        {
            throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                $"its IOMMU group {number} is a no-IOMMU group ({node}): the device could DMA anywhere in physical memory, unprotected",
                "Only if you accept that risk (a machine without an IOMMU), set Vfio:AllowUnsafeNoIommu=true; otherwise enable the IOMMU (intel_iommu=on or amd_iommu=on) and reboot.");
        }
        SafeFileHandle fd;
        bool owns;
        if (Options.GroupFds.TryGetValue(key, out string? reference))
        {
            string description = "Vfio:GroupFds:" + key;
            fd = FdStore.Resolve(reference, noIommu ? VfioFdKind.NoIommuGroup : VfioFdKind.Group, description);
            owns = false;
            node = $"{description} ({reference})";
        }
        else
        {
            if (node is null)
            {
                throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                    $"IOMMU group {number} has no node in /dev/vfio",
                    "Bind the device to a VFIO driver (vfio-pci: driver_override + bind); the group node appears with it.");
            }
            int rc = Kernel.Open(node, OpenFlags.ReadWrite, out fd);
            if (rc < 0)
            {
                fd.Dispose();
                VfioException.Throw(rc, "open", node);
            }
            owns = true;
        }
        if (noIommu)
        {
            LegacyLog.NoIommu(Logger, number, node, device.Name);
        }
        return new LegacyGroup(number, fd, owns, noIommu, node);
    }

    private unsafe void CheckViable(VfioDeviceSource device, LegacyGroup group)
    {
        var status = new vfio_group_status { argsz = (uint)sizeof(vfio_group_status) };
        VfioException.ThrowIfFailed(Kernel.Ioctl(group.Fd, VfioUapi.VFIO_GROUP_GET_STATUS, &status), "VFIO_GROUP_GET_STATUS", group.ToString());
        if ((status.flags & VfioUapi.VFIO_GROUP_FLAGS_VIABLE) != 0)
        {
            return;
        }
        throw VfioDeviceUnusableException.GroupNotViable(AttachOperation, device.Name, device.Bus, group.Number,
            VfioSysfs.GetHostDriverMembers(Kernel, group.Number));
    }

    private LegacyContainer Connect(LegacyGroup group, DmaSpace space)
    {
        foreach (DmaContainer candidate in space.Containers)
        {
            if (candidate is LegacyContainer legacy && ReferenceEquals(legacy.Backend, this) && !legacy.IsReleased)
            {
                int rc = legacy.TryAddGroup(group);
                if (rc == 0)
                {
                    return legacy;
                }
                LegacyLog.JoinRefused(Logger, group.Number, legacy.Name, (Errno)(-rc));
            }
        }
        return CreateAndJoin(group, space);
    }

    private LegacyContainer CreateAndJoin(LegacyGroup group, DmaSpace space)
    {
        (SafeFileHandle fd, bool owns, bool passed) = OpenContainerFd();
        LegacyContainer container;
        try
        {
            string name = "container " + ((long)fd.DangerousGetHandle()).ToString(CultureInfo.InvariantCulture);
            int version = Kernel.Ioctl(fd, VfioUapi.VFIO_GET_API_VERSION, 0);
            if (version < 0)
            {
                VfioException.Throw(version, "VFIO_GET_API_VERSION", name);
            }
            if (version != VfioUapi.VFIO_API_VERSION)
            {
                throw new VfioBackendUnavailableException(Name,
                    $"VFIO API version {VfioUapi.VFIO_API_VERSION} (the container reports version {version})");
            }
            uint type = ChooseIommuType(fd, name, group.NoIommu);
            container = CreateContainer(space, fd, owns, type);
        }
        catch
        {
            if (owns)
            {
                fd.Dispose();
            }
            throw;
        }
        if (passed)
        {
            _passedContainerUser = container;
        }
        try
        {
            int rc = container.TryAddGroup(group);
            if (rc < 0)
            {
                VfioException.Throw(rc, "VFIO_GROUP_SET_CONTAINER", group.ToString());
            }
            container.Initialize();
            space.Join(container);
        }
        catch
        {
            Abandon(container);
            throw;
        }
        LegacyLog.ContainerCreated(Logger, container.Name, container.IommuType, container.PageSizes, container.IovaRanges.Count, space.Name);
        return container;
    }

    private (SafeFileHandle Fd, bool Owns, bool Passed) OpenContainerFd()
    {
        string? reference = Options.IommuFdAsContainer ? Options.IommuFd : Options.ContainerFd;
        if (reference is not null && _passedContainerUser is null)
        {
            SafeFileHandle passed = Options.IommuFdAsContainer
                ? FdStore.Resolve(reference, VfioFdKind.IommuFd, "Vfio:IommuFd")
                : FdStore.Resolve(reference, VfioFdKind.Container, "Vfio:ContainerFd");
            return (passed, false, true);
        }
        string path = ContainerPath;
        int rc = Kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle fd);
        if (rc >= 0)
        {
            return (fd, true, false);
        }
        fd.Dispose();
        if (rc == -(int)Errno.ENOENT)
        {
            throw Options.IommuFdAsContainer
                ? new VfioBackendUnavailableException(Name, "/dev/iommu (CONFIG_IOMMUFD, with CONFIG_IOMMUFD_VFIO_CONTAINER for the container compatibility)", Errno.ENOENT,
                    "Build or load iommufd (modprobe iommufd), or turn Vfio:IommuFdAsContainer off.")
                : new VfioBackendUnavailableException(Name, "/dev/vfio/vfio (CONFIG_VFIO_CONTAINER)", Errno.ENOENT,
                    "Load vfio (modprobe vfio-pci) or use a kernel built with CONFIG_VFIO_CONTAINER (or CONFIG_IOMMUFD_VFIO_CONTAINER); on kernels without it use Vfio:Backend=iommufd.");
        }
        VfioException.Throw(rc, "open", path);
        return default;
    }

    private LegacyAttachedDevice OpenDevice(VfioDeviceSource source, LegacyGroup group, LegacyContainer container)
    {
        VfioDevice? device = null;
        try
        {
            byte[] name = Encoding.UTF8.GetBytes(source.Name + "\0");
            int rc = Kernel.Ioctl(group.Fd, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan());
            if (rc < 0)
            {
                VfioException.Throw(rc, "VFIO_GROUP_GET_DEVICE_FD", source.Name);
            }
#pragma warning disable CA2000 // The fd passes to the VfioDevice (which closes it if it fails), the device to the attached device.
            device = new VfioDevice(Kernel, new SafeFileHandle(rc, ownsHandle: true), source.Name, ownsHandle: true);
#pragma warning restore CA2000
            if (Options.IommuFdAsContainer)
            {
                // iommufd's Type1 compatibility attaches a device to its IOAS when the device is opened, not at
                // SET_IOMMU: only now does GET_INFO show the IOMMU's page sizes and reserved ranges (before, it reports
                // every page size and the whole space; seen on 6.12 in the testbed and in the simulator).
                container.RefreshInfo();
            }
        }
        catch
        {
            device?.Dispose();
            if (group.Devices.Count == 0)
            {
                if (container.Devices.Count == 0)
                {
                    Abandon(container);
                }
                else
                {
                    container.RemoveGroup(group);
                    Forget(group);
                }
            }
            throw;
        }
        var attached = new LegacyAttachedDevice(this, container, device, source, group);
        group.Devices.Add(attached);
        container.Add(attached);
        _devices[source.Name] = attached;
        LegacyLog.Attached(Logger, source.Name, group.Number, container.Name, container.Space.Name);
        return attached;
    }

    private void Abandon(LegacyContainer container)
    {
        try
        {
            container.Space.Leave(container);
        }
        catch (VfioException e)
        {
            LegacyLog.AbandonFailed(Logger, container.Name, e);
        }
    }

    private VfioFdStore FdStore => _fdStore ?? (_ownStore ??= new VfioFdStore(Kernel));
}
