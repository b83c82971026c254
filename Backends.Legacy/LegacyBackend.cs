// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
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
/// Other container IOMMU types (sPAPR TCE) are driven by the <see cref="LegacyIommuTypeHandler"/>s the backend is
/// built with (a package registers one); a host whose container offers only a type no handler drives is a
/// <see cref="VfioBackendUnavailableException"/> that names the package to register.
/// </para>
/// <para>
/// Not sealed for one purpose: a package whose container IOMMU type has a configuration name of its own (sPAPR TCE's
/// <c>spapr-tce</c>) derives a backend that drives only its handlers' types, through the protected constructor; the
/// container logic stays here: such a backend overrides only <see cref="Name"/> and <see cref="Features"/> (attach,
/// detach and availability are sealed; availability then means a container offers one of the handlers' types).
/// </para>
/// <para>Thread-safe: attach and detach are serialized.</para>
/// </remarks>
public class LegacyBackend : IommuBackend
{
    /// <summary>The backend's configuration name.</summary>
    public const string BackendName = "legacy";

    private const string AttachOperation = "attach device";
    private const string ContainerNode = "/dev/vfio/vfio";
    private const string IommuNode = "/dev/iommu";

    private readonly Dictionary<int, LegacyGroup> _groups = [];
    private readonly LegacyIommuTypeHandler[] _handlers;
    private readonly bool _handledTypesOnly;
    private LegacyContainer? _passedContainerUser;

    /// <summary>Creates the backend.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The configuration (no-IOMMU opt-in, passed fds, iommufd container mode); null for defaults.</param>
    /// <param name="fdStore">Where named passed fds are looked up; null when only inherited fd numbers are used.</param>
    /// <param name="logger">Where attaches, detaches and warnings are logged; null for none.</param>
    /// <param name="iommuTypeHandlers">The handlers of container IOMMU types beyond Type1 and no-IOMMU (sPAPR TCE);
    /// null or empty for none.</param>
    public LegacyBackend(IKernel kernel, VfioOptions? options = null, VfioFdStore? fdStore = null, ILogger? logger = null,
        IEnumerable<LegacyIommuTypeHandler>? iommuTypeHandlers = null)
        : this(kernel, options, fdStore, logger, iommuTypeHandlers, handledTypesOnly: false)
    {
    }

    /// <summary>Creates a backend that drives only the IOMMU types of <paramref name="iommuTypeHandlers"/> (never Type1
    /// or no-IOMMU), for a derived backend with a configuration name of its own (<c>spapr-tce</c>).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The configuration; null for defaults.</param>
    /// <param name="fdStore">Where named passed fds are looked up; null when only inherited fd numbers are used.</param>
    /// <param name="logger">Where attaches, detaches and warnings are logged; null for none.</param>
    /// <param name="iommuTypeHandlers">The handlers whose types this backend drives; at least one.</param>
    /// <param name="handledTypesOnly">True to skip Type1 and no-IOMMU: a container that offers none of the handlers'
    /// types is a <see cref="VfioBackendUnavailableException"/> naming the legacy backend.</param>
    protected LegacyBackend(IKernel kernel, VfioOptions? options, VfioFdStore? fdStore, ILogger? logger,
        IEnumerable<LegacyIommuTypeHandler>? iommuTypeHandlers, bool handledTypesOnly)
        : base(kernel, options, fdStore, logger)
    {
        _handlers = iommuTypeHandlers is null ? [] : [.. iommuTypeHandlers];
        foreach (LegacyIommuTypeHandler handler in _handlers)
        {
            ArgumentNullException.ThrowIfNull(handler, nameof(iommuTypeHandlers));
        }
        if (handledTypesOnly && _handlers.Length == 0)
        {
            throw new ArgumentException("A backend that drives only its handlers' IOMMU types needs at least one handler.", nameof(iommuTypeHandlers));
        }
        _handledTypesOnly = handledTypesOnly;
    }

    /// <inheritdoc/>
    public override string Name => BackendName;

    /// <inheritdoc/>
    public override IommuBackendFeatures Features
        => IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.DirtyTracking | IommuBackendFeatures.PassedFds;

    /// <summary>The handlers of other container IOMMU types the backend was built with.</summary>
    public IReadOnlyList<LegacyIommuTypeHandler> IommuTypeHandlers => _handlers;

    /// <summary>The kernel port, for the backend's containers.</summary>
    internal IKernel ContainerKernel => Kernel;

    /// <summary>The backend's logger, for its containers.</summary>
    internal ILogger ContainerLogger => Logger;

    private string ContainerPath => Options.IommuFdAsContainer ? IommuNode : ContainerNode;

    /// <inheritdoc/>
    protected sealed override bool IsAvailableCore(out string reason)
    {
        if (Options.IommuFdAsContainer ? Options.IommuFd is not null : Options.ContainerFd is not null)
        {
            reason = Options.IommuFdAsContainer ? "an iommufd was passed as the container (Vfio:IommuFd)" : "a container fd was passed (Vfio:ContainerFd)";
            return true;
        }
        if (!Kernel.Exists(ContainerPath))
        {
            reason = Options.IommuFdAsContainer
                ? "/dev/iommu is missing (the kernel lacks CONFIG_IOMMUFD)"
                : "/dev/vfio/vfio is missing (the kernel lacks CONFIG_VFIO_CONTAINER, or vfio is not loaded)";
            return false;
        }
        if (_handledTypesOnly)
        {
            return OffersHandledType(out reason);
        }
        reason = ContainerPath + " exists";
        return true;
    }

    /// <summary>For a backend of handled types only: whether a fresh container offers one of them (the fd is closed
    /// again at once). The reason names the type found, or what the container offers instead.</summary>
    private bool OffersHandledType(out string reason)
    {
        int rc = Kernel.Open(ContainerPath, OpenFlags.ReadWrite, out SafeFileHandle fd);
        using (fd)
        {
            if (rc < 0)
            {
                reason = $"{ContainerPath} cannot be opened ({(Errno)(-rc)})";
                return false;
            }
            string name = ContainerPath;
            if (FindHandledType(fd, name, out LegacyIommuTypeHandler? handler) is uint type)
            {
                bool type1 = CheckExtension(fd, name, VfioUapi.VFIO_TYPE1v2_IOMMU) || CheckExtension(fd, name, VfioUapi.VFIO_TYPE1_IOMMU);
                reason = string.Create(CultureInfo.InvariantCulture,
                    $"{name} offers IOMMU type {type} ({handler!.Name}){(type1 ? " besides Type1" : " instead of Type1")}");
                return true;
            }
            reason = CheckExtension(fd, name, VfioUapi.VFIO_TYPE1v2_IOMMU) || CheckExtension(fd, name, VfioUapi.VFIO_TYPE1_IOMMU)
                ? $"{name} offers Type1 (the legacy backend's), not {string.Join(" or ", _handlers.Select(static h => h.Name))}"
                : $"{name} offers none of the IOMMU types of {string.Join(", ", _handlers.Select(static h => h.Name))}";
            return false;
        }
    }

    /// <inheritdoc/>
    protected sealed override bool CanAttachCore(VfioDeviceSource device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DeviceFd is not null || device.SysfsPath is null)
        {
            reason = $"{device.Name} is a passed device cdev fd, which only the iommufd backend can use";
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
        reason = $"{device.Name} is in IOMMU group {group} ({node}) and {ContainerPath} is there";
        return true;
    }

    /// <inheritdoc/>
    protected sealed override AttachedDevice AttachDeviceCore(VfioDeviceSource device, DmaSpace space)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(space);
        if (device.DeviceFd is not null || device.SysfsPath is null)
        {
            throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                "a device cdev fd was given, which only the iommufd backend can use (the legacy backend opens devices through their group)",
                "Use Vfio:Backend=iommufd for passed device fds, or pass the group fd (Vfio:GroupFds:N) instead.");
        }
        int number = VfioSysfs.GetIommuGroup(Kernel, device.SysfsPath)
            ?? throw new VfioDeviceUnusableException(AttachOperation, device.Name, "the device has no IOMMU group",
                "Enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line, VT-d/AMD-Vi in the firmware) or, accepting unprotected DMA, no-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1 and Vfio:AllowUnsafeNoIommu=true).");
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

    /// <inheritdoc/>
    protected sealed override void DetachDeviceCore(AttachedDevice device)
    {
        var legacy = (LegacyAttachedDevice)device;
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
            DropIfUnused(group, container, quietly: false);
        }
    }

    /// <summary>
    /// A group with no device left leaves its container: the container's last group releases the container (unmap
    /// everything, then unset and close the groups and the container fd), another is unset and closed alone.
    /// </summary>
    private void DropIfUnused(LegacyGroup group, LegacyContainer container, bool quietly)
    {
        if (group.Devices.Count > 0)
        {
            return;
        }
        if (container.Devices.Count > 0)
        {
            container.RemoveGroup(group);
            Forget(group);
        }
        else if (quietly)
        {
            ReleaseQuietly(container);
        }
        else
        {
            LeaveSpace(container);
        }
    }

    /// <summary>The groups the backend holds open, for a hot reset's group-fd array.</summary>
    internal HotResetGroup[] HeldGroups()
    {
        lock (SyncRoot)
        {
            return [.. _groups.Values.Select(static g => new HotResetGroup(g.Number, g.Fd))];
        }
    }

    /// <summary>Forgets a group its container released.</summary>
    internal void Forget(LegacyGroup group)
    {
        lock (SyncRoot)
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
        lock (SyncRoot)
        {
            if (ReferenceEquals(_passedContainerUser, container))
            {
                _passedContainerUser = null;
            }
        }
    }

    /// <summary>
    /// Chooses the IOMMU type for a new container, as QEMU's <c>vfio_get_iommu_type</c>: Type1 v2, else Type1 v1, else
    /// the types of the registered handlers in their order; a container for a no-IOMMU group uses
    /// <c>VFIO_NOIOMMU_IOMMU</c>.
    /// </summary>
    private uint ChooseIommuType(SafeFileHandle containerFd, string containerName, bool noIommu, out LegacyIommuTypeHandler? handler)
    {
        handler = null;
        if (_handledTypesOnly)
        {
            return ChooseHandledType(containerFd, containerName, noIommu, out handler);
        }
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
        foreach (uint type in (ReadOnlySpan<uint>)[VfioUapi.VFIO_TYPE1v2_IOMMU, VfioUapi.VFIO_TYPE1_IOMMU])
        {
            if (CheckExtension(containerFd, containerName, type))
            {
                return type;
            }
        }
        if (FindHandledType(containerFd, containerName, out handler) is uint handled)
        {
            return handled;
        }
        if (CheckExtension(containerFd, containerName, VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU) || CheckExtension(containerFd, containerName, VfioUapi.VFIO_SPAPR_TCE_IOMMU))
        {
            throw new VfioBackendUnavailableException(Name,
                "a Type1 IOMMU (this host's container offers only sPAPR TCE, which the sPAPR TCE backend drives, and it is not registered)",
                hint: "Register the sPAPR TCE backend: services.AddVfio(...).AddSpaprTceBackend() (or select it with Vfio:Backend=spapr-tce).");
        }
        throw new VfioBackendUnavailableException(Name,
            "a Type1 IOMMU (the container offers no IOMMU backend)",
            hint: "Enable the IOMMU: intel_iommu=on or amd_iommu=on on the kernel command line and VT-d/AMD-Vi in the firmware (arm64: an SMMU); check dmesg for DMAR/IOMMU messages.");
    }

    /// <summary>The choice of a backend that drives only its handlers' types.</summary>
    private uint ChooseHandledType(SafeFileHandle containerFd, string containerName, bool noIommu, out LegacyIommuTypeHandler? handler)
    {
        string names = string.Join(", ", _handlers.Select(static h => h.Name));
        if (noIommu)
        {
            throw new VfioBackendUnavailableException(Name,
                $"an IOMMU ({names}); no-IOMMU groups are driven by the legacy backend only",
                hint: "Use Vfio:Backend=legacy with Vfio:AllowUnsafeNoIommu=true for a no-IOMMU group.");
        }
        if (FindHandledType(containerFd, containerName, out handler) is uint type)
        {
            return type;
        }
        string offered = CheckExtension(containerFd, containerName, VfioUapi.VFIO_TYPE1v2_IOMMU) || CheckExtension(containerFd, containerName, VfioUapi.VFIO_TYPE1_IOMMU)
            ? "the container offers Type1, which the legacy backend drives"
            : "the container offers none of them";
        throw new VfioBackendUnavailableException(Name, $"a container IOMMU type of {names} ({offered})",
            hint: "Use Vfio:Backend=legacy (or auto) on this host.");
    }

    /// <summary>The first of the handlers' types the container offers, in handler order, or null.</summary>
    private uint? FindHandledType(SafeFileHandle containerFd, string containerName, out LegacyIommuTypeHandler? handler)
    {
        foreach (LegacyIommuTypeHandler candidate in _handlers)
        {
            foreach (uint type in candidate.IommuTypes)
            {
                if (CheckExtension(containerFd, containerName, type))
                {
                    handler = candidate;
                    return type;
                }
            }
        }
        handler = null;
        return null;
    }

    private LegacyContainer CreateContainer(LegacyIommuTypeHandler? handler, DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
    {
        if (handler is null)
        {
            return new LegacyContainer(this, space, containerFd, ownsContainerFd, iommuType);
        }
        LegacyContainer container = handler.CreateContainer(this, space, containerFd, ownsContainerFd, iommuType);
        if (container is null || !ReferenceEquals(container.Backend, this) || !ReferenceEquals(container.Space, space) || container.Fd != containerFd)
        {
            throw new InvalidOperationException(
                $"The {handler.Name} IOMMU type handler returned {(container is null ? "no container" : container.Name)}, not a container of this backend for DMA space '{space.Name}' on the given fd.");
        }
        return container;
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
            // The right kind is not enough: another group's fd would fail later with GET_DEVICE_FD's bare ENODEV.
            VfioFdIdentity identity = VfioFdValidator.Identify(Kernel, fd);
            if (identity.Name != key)
            {
                throw new VfioException("validate passed fd", $"{description} ({reference})",
                    $"the fd is IOMMU group {identity.Name}, but {device.Name} is in group {key}",
                    $"The management layer passed another group's fd: pass /dev/vfio/{key} (or noiommu-{key}) under Vfio:GroupFds:{key}.");
            }
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
                if ((Errno)(-rc) == Errno.EBUSY)
                {
                    // The same answer whether the group is open elsewhere or a member is bound to an iommufd.
                    throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                        $"its IOMMU group {number} ({node}) is in use: the group is open already, or one of its devices is bound through its cdev to an iommufd (the iommufd backend, here or in another process)",
                        $"Detach the group's devices where they are attached first (fuser -v {node} /dev/vfio/devices/* shows who holds them), use one backend for every device of a group, or share the group's fd (Vfio:GroupFds).", Errno.EBUSY);
                }
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
        throw GroupNotViable(AttachOperation, device, group.Number, VfioSysfs.GetHostDriverMembers(Kernel, group.Number));
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
            uint type = ChooseIommuType(fd, name, group.NoIommu, out LegacyIommuTypeHandler? handler);
            container = CreateContainer(handler, space, fd, owns, type);
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
            if (rc == -(int)Errno.EBUSY && passed)
            {
                // The group was put explicitly into the passed container, which refuses it: a typed error, not a
                // container of its own (that is only for containers this backend chose, see Connect).
                throw new VfioException(Errno.EBUSY, "VFIO_GROUP_SET_CONTAINER", group.ToString(),
                    $"The passed container (Vfio:ContainerFd, {container.Name}) refuses IOMMU group {group.Number.ToString(CultureInfo.InvariantCulture)}: it already holds a group its IOMMU cannot share (an sPAPR TCE v1 container takes exactly one) or the group is in another container. Pass an empty container, or pass none so that the backend gives the group a container of its own.");
            }
            if (rc < 0)
            {
                VfioException.Throw(rc, "VFIO_GROUP_SET_CONTAINER", group.ToString());
            }
            container.Initialize();
            JoinSpace(container);
        }
        catch
        {
            ReleaseQuietly(container);
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
            DropIfUnused(group, container, quietly: true);
            throw;
        }
        var attached = new LegacyAttachedDevice(this, container, device, source, group);
        group.Devices.Add(attached);
        container.Add(attached);
        return attached;
    }
}
