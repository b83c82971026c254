// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.IommuFd;

/// <summary>
/// The iommufd backend (<c>iommufd</c>): devices are opened through their VFIO cdev (<c>/dev/vfio/devices/vfioN</c>,
/// or an fd a management layer passed), bound to one iommufd (<c>/dev/iommu</c>, or a passed one), and attached to
/// one IOAS per <see cref="DmaSpace"/> (<see cref="IommuFdContainer"/>).
/// </summary>
/// <remarks>
/// Attaching: the cdev is bound (<c>VFIO_DEVICE_BIND_IOMMUFD</c>); the space's IOAS is allocated for its first
/// device; the IOMMU is asked what it can do (<c>IOMMU_GET_HW_INFO</c>); the device is attached to a HWPT of the IOAS
/// it can share, else — when dirty tracking is wanted and the IOMMU has it — to a HWPT allocated with
/// <c>IOMMU_HWPT_ALLOC_DIRTY_TRACKING</c>, else to the IOAS itself (the kernel picks or creates an automatic HWPT).
/// The IOAS's IOVA ranges are then re-read (they narrow by the device's reserved regions) and, for the first device,
/// the IOAS joins the space, which replays the space's mappings into it. Any failure undoes every step. Thread-safe:
/// attach and detach are serialized per backend (<see cref="IommuBackend"/>). Disposing the backend detaches what is
/// still attached and closes the iommufd when the backend opened it (a passed iommufd is borrowed and never closed).
/// </remarks>
public partial class IommuFdBackend : IommuBackend
{
    private readonly Dictionary<DmaSpace, IommuFdContainer> _containers = [];
    private SafeFileHandle? _iommufd;
    private bool _ownsIommufd;

    /// <summary>The backend's configuration name, <c>iommufd</c>.</summary>
    public const string BackendName = "iommufd";

    private const string IommuPath = "/dev/iommu";
    private const int Eaddrinuse = 98;

    /// <summary>Creates the backend; nothing is opened until the first attach.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The options: <see cref="VfioOptions.IommuFd"/> and <see cref="VfioOptions.DeviceFds"/>
    /// name passed fds; null for the defaults.</param>
    /// <param name="fdStore">Where passed fds named by the options are looked up; null when none were received (fd
    /// numbers inherited from the launcher still work).</param>
    /// <param name="logger">Where attach, detach and teardown problems are logged; null for none.</param>
    public IommuFdBackend(IKernel kernel, VfioOptions? options = null, VfioFdStore? fdStore = null, ILogger? logger = null)
        : base(kernel, options, fdStore, logger)
    {
    }

    /// <inheritdoc/>
    public override string Name => BackendName;

    /// <inheritdoc/>
    public override IommuBackendFeatures Features => IommuBackendFeatures.HotResetByDeviceIds | IommuBackendFeatures.DirtyTracking
        | IommuBackendFeatures.KernelChosenIova | IommuBackendFeatures.PassedFds;

    /// <summary>
    /// Whether a device whose IOMMU reports <c>IOMMU_HW_CAP_DIRTY_TRACKING</c> is attached to a HWPT allocated with
    /// <c>IOMMU_HWPT_ALLOC_DIRTY_TRACKING</c> (as QEMU does), so that its container offers dirty tracking. On by
    /// default; tracking itself only runs between <see cref="DmaContainer.StartDirtyTracking"/> and
    /// <see cref="DmaContainer.StopDirtyTracking"/>.
    /// </summary>
    public bool UseDirtyTrackingHwpts { get; set; } = true;

    /// <summary>The containers (one IOAS per DMA space) that have devices now.</summary>
    public IReadOnlyList<IommuFdContainer> Containers
    {
        get
        {
            lock (SyncRoot)
            {
                return [.. _containers.Values];
            }
        }
    }

    /// <inheritdoc/>
    protected override bool IsAvailableCore(out string reason)
    {
        if (Options.IommuFd is not null)
        {
            reason = "an iommufd was passed (Vfio:IommuFd)";
            return true;
        }
        if (!Kernel.Exists(IommuPath))
        {
            reason = "the kernel has no /dev/iommu (CONFIG_IOMMUFD)";
            return false;
        }
        reason = IommuPath + " exists";
        return true;
    }

    /// <inheritdoc/>
    protected override bool CanAttachCore(VfioDeviceSource device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DeviceFd is not null)
        {
            reason = "the device's cdev fd was passed";
            return true;
        }
        if (Options.DeviceFds.ContainsKey(device.Name))
        {
            reason = "the device's cdev fd is configured (Vfio:DeviceFds)";
            return true;
        }
        string? cdev = device.SysfsPath is null ? null : VfioSysfs.GetCdevPath(Kernel, device.SysfsPath);
        if (cdev is null)
        {
            reason = $"{device.Name} has no VFIO cdev (not bound to a VFIO driver, or a kernel without CONFIG_VFIO_DEVICE_CDEV)";
            return false;
        }
        reason = $"{device.Name} has the cdev {cdev} and the iommufd is there";
        return true;
    }

    /// <inheritdoc/>
    protected override bool IsPassedDevice(VfioDeviceSource device)
        => base.IsPassedDevice(device) || Options.DeviceFds.ContainsKey(device.Name);

    /// <inheritdoc/>
    protected override AttachedDevice AttachDeviceCore(VfioDeviceSource device, DmaSpace space)
    {
        SafeFileHandle iommufd = GetIommuFd();
        (SafeFileHandle cdev, bool ownsCdev) = OpenDevice(device);
        return Attach(device, space, iommufd, cdev, ownsCdev);
    }

    /// <inheritdoc/>
    protected override void DetachDeviceCore(AttachedDevice device)
    {
        var attached = (IommuFdAttachedDevice)device;
        IommuFdContainer container = attached.IommuFdContainer;
        if (!attached.CdevFd.IsClosed)
        {
            int rc = DetachPt(attached.CdevFd);
            if (rc < 0)
            {
                Log.DetachFailed(Logger, attached.Name, (Errno)(-rc));
            }
        }
        attached.Device.Dispose();
        container.RemoveHwptUser(attached.HwptId);
        container.RemoveAttached(attached);
        if (container.Devices.Count == 0)
        {
            ReleaseQuietly(container);
            return;
        }
        try
        {
            container.RefreshLimits();
        }
        catch (VfioException e)
        {
            Log.RefreshFailed(Logger, container.Name, e);
        }
    }

    /// <summary>Detaches every device still attached (the base), then closes the iommufd if this backend opened it.</summary>
    /// <param name="disposing">True when called from <see cref="IommuBackend.Dispose()"/>.</param>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing)
        {
            return;
        }
        lock (SyncRoot)
        {
            if (_ownsIommufd)
            {
                _iommufd?.Dispose();
            }
            _iommufd = null;
        }
    }

    /// <summary>Forgets a container its space released (called from <see cref="IommuFdContainer"/>'s release).</summary>
    internal void OnContainerReleased(IommuFdContainer container)
    {
        lock (SyncRoot)
        {
            if (_containers.TryGetValue(container.Space, out IommuFdContainer? recorded) && ReferenceEquals(recorded, container))
            {
                _containers.Remove(container.Space);
            }
        }
    }

    private static unsafe int DetachPt(SafeFileHandle cdev, IKernel kernel)
    {
        var detach = new vfio_device_detach_iommufd_pt { argsz = (uint)Unsafe.SizeOf<vfio_device_detach_iommufd_pt>() };
        return kernel.Ioctl(cdev, VfioUapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
    }

    private int DetachPt(SafeFileHandle cdev) => DetachPt(cdev, Kernel);

    private SafeFileHandle GetIommuFd()
    {
        if (_iommufd is not null)
        {
            return _iommufd;
        }
        if (Options.IommuFd is string reference)
        {
            _iommufd = FdStore.Resolve(reference, VfioFdKind.IommuFd, "Vfio:IommuFd");
            _ownsIommufd = false;
            Log.UsingPassedIommuFd(Logger, reference);
            return _iommufd;
        }
        int rc = Kernel.Open(IommuPath, OpenFlags.ReadWrite, out SafeFileHandle handle);
        if (rc < 0)
        {
            handle.Dispose();
            var errno = (Errno)(-rc);
            if (errno is Errno.ENOENT or Errno.ENODEV or Errno.ENXIO)
            {
                throw new VfioBackendUnavailableException(BackendName, "CONFIG_IOMMUFD (/dev/iommu)", errno,
                    "Build the kernel with CONFIG_IOMMUFD (or modprobe iommufd), or use the legacy backend (Vfio:Backend=legacy).");
            }
            throw new VfioException(errno, "open", IommuPath);
        }
        _iommufd = handle;
        _ownsIommufd = true;
        Log.OpenedIommuFd(Logger);
        return handle;
    }

    private (SafeFileHandle Handle, bool Owned) OpenDevice(VfioDeviceSource device)
    {
        if (device.DeviceFd is SafeFileHandle passed)
        {
            // Checked before the bind: a wrong or closed fd gets an error naming where it came from, not the bind's
            // ENOTTY or EBADF.
            string description = $"the device fd given for {device.Name} (VfioDeviceSource.FromDeviceFd)";
            ExpectCdevOf(device, VfioFdValidator.Expect(Kernel, passed, VfioFdKind.DeviceCdev, description), description);
            return (passed, device.OwnsDeviceFd);
        }
        if (Options.DeviceFds.TryGetValue(device.Name, out string? reference))
        {
            string description = "Vfio:DeviceFds:" + device.Name;
            SafeFileHandle resolved = FdStore.Resolve(reference, VfioFdKind.DeviceCdev, description);
            ExpectCdevOf(device, VfioFdValidator.Identify(Kernel, resolved), $"{description} ({reference})");
            return (resolved, false);
        }
        // The base's preflight found the device bound to a VFIO driver: no cdev then means a kernel without cdevs.
        string cdevPath = (device.SysfsPath is null ? null : VfioSysfs.GetCdevPath(Kernel, device.SysfsPath))
            ?? throw new VfioBackendUnavailableException(BackendName, $"CONFIG_VFIO_DEVICE_CDEV (no /dev/vfio/devices entry for {device.Name})",
                hint: "Build the kernel with CONFIG_VFIO_DEVICE_CDEV=y, or use the legacy backend (Vfio:Backend=legacy).");
        int rc = Kernel.Open(cdevPath, OpenFlags.ReadWrite, out SafeFileHandle handle);
        if (rc < 0)
        {
            handle.Dispose();
            throw new VfioException((Errno)(-rc), "open", cdevPath);
        }
        return (handle, true);
    }

    /// <summary>A passed cdev must be the named device's: another device's cdev would bind and attach that device under
    /// this name (the kernel cannot tell).</summary>
    private static void ExpectCdevOf(VfioDeviceSource device, VfioFdIdentity identity, string description)
    {
        if (identity.DeviceName is string actual && !string.Equals(actual, device.Name, StringComparison.Ordinal))
        {
            throw new VfioException("validate passed fd", description,
                $"the fd is the cdev {identity.Name} of device {actual}, not of {device.Name}",
                "The management layer passed another device's cdev: pass the cdev under /sys/bus/*/devices/<device>/vfio-dev/ of the device named.");
        }
    }

    private IommuFdAttachedDevice Attach(VfioDeviceSource source, DmaSpace space, SafeFileHandle iommufd, SafeFileHandle cdev, bool ownsCdev)
    {
        string name = source.Name;
        IommuFdContainer? container = null;
        bool created = false;
        bool attachedToHwpt = false;
        uint hwpt = 0;
        bool hwptRecorded = false;
        bool hwptAllocated = false;
        VfioDevice? vfioDevice = null;
        try
        {
            uint devid = Bind(cdev, iommufd, source);
            container = GetOrCreateContainer(space, iommufd, out created);
            IommuHardwareInfo info = GetHardwareInfo(iommufd, devid, name);
            hwpt = AttachToHwpt(container, iommufd, cdev, devid, info, name, out hwptAllocated, out bool dirty);
            attachedToHwpt = true;
            container.AddHwptUser(hwpt, hwptAllocated, dirty);
            hwptRecorded = true;
            container.RefreshLimits();
#pragma warning disable CA2000 // Undo disposes it on failure; on success the attached device owns it.
            vfioDevice = new VfioDevice(Kernel, cdev, name, ownsCdev);
#pragma warning restore CA2000
            if (created)
            {
                JoinSpace(container);
            }
            container.IommuHardwareInfo ??= info;
            int? group = source.SysfsPath is null ? null : VfioSysfs.GetIommuGroup(Kernel, source.SysfsPath);
            var attached = new IommuFdAttachedDevice(this, container, vfioDevice, source, cdev, devid, hwpt, group, info);
            container.AddAttached(attached);
            return attached;
        }
        catch
        {
            Undo();
            throw;
        }

        void Undo()
        {
            try
            {
                if (attachedToHwpt && !cdev.IsClosed)
                {
                    int rc = DetachPt(cdev);
                    if (rc < 0)
                    {
                        Log.DetachFailed(Logger, name, (Errno)(-rc));
                    }
                }
                if (hwptRecorded)
                {
                    container!.RemoveHwptUser(hwpt);
                }
                if (hwptAllocated && !created)
                {
                    container!.DropAllocatedHwpt(hwpt);
                }
                if (vfioDevice is not null)
                {
                    vfioDevice.Dispose();
                }
                else if (ownsCdev)
                {
                    cdev.Dispose();
                }
                if (container is not null)
                {
                    if (created)
                    {
                        LeaveSpace(container);
                    }
                    else if (attachedToHwpt)
                    {
                        container.RefreshLimits();
                    }
                }
            }
            catch (VfioException undo)
            {
                Log.UndoFailed(Logger, name, undo);
            }
        }
    }

    private unsafe uint Bind(SafeFileHandle cdev, SafeFileHandle iommufd, VfioDeviceSource source)
    {
        string name = source.Name;
        var bind = new vfio_device_bind_iommufd { argsz = (uint)Unsafe.SizeOf<vfio_device_bind_iommufd>(), iommufd = (int)iommufd.DangerousGetHandle() };
        int rc = Kernel.Ioctl(cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, &bind);
        if (rc >= 0)
        {
            return bind.out_devid;
        }
        var errno = (Errno)(-rc);
        // EPERM is also what the DMA-ownership claim returns when a member of the device's IOMMU group is bound to a
        // host driver (iommu_device_claim_dma_owner: the group's owner is the kernel): say which member, as legacy does.
        if (errno == Errno.EPERM && source.SysfsPath is string sysfs && VfioSysfs.GetIommuGroup(Kernel, sysfs) is int group)
        {
            IReadOnlyList<VfioGroupMember> offenders = VfioSysfs.GetHostDriverMembers(Kernel, group);
            if (offenders.Count > 0)
            {
                throw GroupNotViable("VFIO_DEVICE_BIND_IOMMUFD", source, group, offenders, errno);
            }
        }
        throw errno switch
        {
            Errno.EBUSY => new VfioDeviceUnusableException("VFIO_DEVICE_BIND_IOMMUFD", name,
                "the device's IOMMU group is open through the legacy group node (/dev/vfio/N)",
                "Detach the group's devices from the legacy backend (close the group) before using the iommufd backend.", errno),
            Errno.EPERM => new VfioDeviceUnusableException("VFIO_DEVICE_BIND_IOMMUFD", name,
                "DMA ownership of the device's IOMMU group is held elsewhere (a kernel driver, a legacy VFIO group or another iommufd), or the platform cannot isolate MSI",
                "Bind every device of the IOMMU group to vfio-pci, use one iommufd for all devices of a group, and enable interrupt remapping (or iommufd.allow_unsafe_interrupts=1).", errno),
            Errno.EINVAL => new VfioDeviceUnusableException("VFIO_DEVICE_BIND_IOMMUFD", name,
                "the device is already open (through another cdev fd or its group) or this fd is already bound",
                "Close the other fd of the device first; a cdev fd can be bound once.", errno),
            _ => new VfioException(errno, "VFIO_DEVICE_BIND_IOMMUFD", name),
        };
    }

    private unsafe IommuFdContainer GetOrCreateContainer(DmaSpace space, SafeFileHandle iommufd, out bool created)
    {
        if (_containers.TryGetValue(space, out IommuFdContainer? existing) && !existing.IsReleased)
        {
            created = false;
            return existing;
        }
        var alloc = new iommu_ioas_alloc { size = (uint)Unsafe.SizeOf<iommu_ioas_alloc>() };
        int rc = Kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC, &alloc);
        if (rc < 0)
        {
            throw new VfioException((Errno)(-rc), "IOMMU_IOAS_ALLOC", IommuPath);
        }
        var container = new IommuFdContainer(this, space, Kernel, iommufd, alloc.out_ioas_id, Logger);
        _containers[space] = container;
        created = true;
        Log.AllocatedIoas(Logger, container.Name, space.Name);
        return container;
    }

    private unsafe IommuHardwareInfo GetHardwareInfo(SafeFileHandle iommufd, uint devid, string name)
    {
        var info = new iommu_hw_info { size = (uint)Unsafe.SizeOf<iommu_hw_info>(), dev_id = devid };
        int rc = Kernel.Ioctl(iommufd, IommuUapi.IOMMU_GET_HW_INFO, &info);
        if (rc < 0)
        {
            throw new VfioException((Errno)(-rc), "IOMMU_GET_HW_INFO", name);
        }
        return new IommuHardwareInfo(info.out_data_type, info.out_capabilities, info.out_max_pasid_log2);
    }

    private uint AttachToHwpt(IommuFdContainer container, SafeFileHandle iommufd, SafeFileHandle cdev, uint devid,
        IommuHardwareInfo info, string name, out bool allocated, out bool dirty)
    {
        bool wantDirty = UseDirtyTrackingHwpts && info.SupportsDirtyTracking;
        foreach (uint candidate in container.CandidateHwpts(dirtyOnly: wantDirty))
        {
            int rc = AttachPt(cdev, candidate, out uint attachedTo);
            if (rc >= 0)
            {
                allocated = false;
                dirty = wantDirty;
                return attachedTo;
            }
            if (rc is not (-(int)Errno.EINVAL or -(int)Errno.EOPNOTSUPP))
            {
                throw AttachFailed(rc, name, container, candidate);
            }
            Log.HwptIncompatible(Logger, name, candidate, (Errno)(-rc));
        }
        if (wantDirty)
        {
            uint hwpt = AllocateDirtyHwpt(iommufd, devid, container, name);
            int rc = AttachPt(cdev, hwpt, out uint attachedTo);
            if (rc < 0)
            {
                container.DestroyHwpt(hwpt);
                throw AttachFailed(rc, name, container, hwpt);
            }
            allocated = true;
            dirty = true;
            Log.AllocatedDirtyHwpt(Logger, hwpt, container.Name, name);
            return attachedTo;
        }
        int result = AttachPt(cdev, container.IoasId, out uint auto);
        if (result < 0)
        {
            throw AttachFailed(result, name, container, container.IoasId);
        }
        allocated = false;
        dirty = false;
        return auto;
    }

    private unsafe int AttachPt(SafeFileHandle cdev, uint ptId, out uint attachedTo)
    {
        var attach = new vfio_device_attach_iommufd_pt { argsz = (uint)Unsafe.SizeOf<vfio_device_attach_iommufd_pt>(), pt_id = ptId };
        int rc = Kernel.Ioctl(cdev, VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
        attachedTo = attach.pt_id;
        return rc;
    }

    private unsafe uint AllocateDirtyHwpt(SafeFileHandle iommufd, uint devid, IommuFdContainer container, string name)
    {
        var alloc = new iommu_hwpt_alloc
        {
            size = (uint)Unsafe.SizeOf<iommu_hwpt_alloc>(),
            flags = IommuUapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
            dev_id = devid,
            pt_id = container.IoasId,
            data_type = IommuUapi.IOMMU_HWPT_DATA_NONE,
        };
        int rc = Kernel.Ioctl(iommufd, IommuUapi.IOMMU_HWPT_ALLOC, &alloc);
        if (rc < 0)
        {
            throw new VfioException((Errno)(-rc), "IOMMU_HWPT_ALLOC", $"{name} ({container.Name})");
        }
        return alloc.out_hwpt_id;
    }

    private static VfioException AttachFailed(int rc, string name, IommuFdContainer container, uint ptId)
    {
        var errno = (Errno)(-rc);
        string target = ptId == container.IoasId ? container.Name : $"HWPT {ptId.ToString(CultureInfo.InvariantCulture)} of {container.Name}";
        return rc == -Eaddrinuse
            ? new VfioException("VFIO_DEVICE_ATTACH_IOMMUFD_PT", name,
                $"attaching to {target} failed (EADDRINUSE): the DMA space already maps IOVAs the device reserves (e.g. the MSI window) or its IOMMU cannot reach",
                "Attach the device before mapping, or to a DMA space of its own.")
            : new VfioException(errno, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", $"{name} ({target})");
    }
}
