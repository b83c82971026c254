// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vfio.Core;

/// <summary>
/// The base every IOMMU backend derives from. It does what is the same on every backend, once: argument checks, the
/// lock, the table of attached devices (a device is attached once), the device preflight (the device exists, is bound
/// to a VFIO driver, is not a PCI bridge — with the fix for the device's bus), the detach-everything loop of
/// <see cref="Dispose()"/>, and the attach and detach log lines. A backend supplies how it attaches and detaches
/// (<see cref="AttachDeviceCore"/>, <see cref="DetachDeviceCore"/>) and whether its kernel interface exists
/// (<see cref="IsAvailableCore"/>, <see cref="CanAttachCore"/>).
/// </summary>
/// <remarks>
/// <para>
/// Backends know no bus: what differs per bus (sysfs paths, the VFIO driver, the bind commands) comes from the
/// device source's <see cref="VfioBus"/> here and in the error factories.
/// </para>
/// <para>
/// Thread-safe: attach and detach are serialized per backend; the <c>*Core</c> hooks run under the lock
/// (<see cref="SyncRoot"/>, which is reentrant, so a container's release can call back into its backend).
/// </para>
/// </remarks>
public abstract partial class IommuBackend : IIommuBackend, IDisposable
{
    private const string AttachOperation = "attach device";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, AttachedDevice> _attached = new(StringComparer.Ordinal);
    private readonly VfioFdStore? _fdStore;
    private VfioFdStore? _ownStore;
    private bool _disposed;

    /// <summary>Creates the backend's common state; nothing is opened.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The configuration (passed fds, no-IOMMU opt-in); null for defaults.</param>
    /// <param name="fdStore">Where named passed fds are looked up; null when only inherited fd numbers are used.</param>
    /// <param name="logger">Where attaches, detaches and warnings are logged; null for none.</param>
    protected IommuBackend(IKernel kernel, VfioOptions? options, VfioFdStore? fdStore, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        Kernel = kernel;
        Options = options ?? new VfioOptions();
        _fdStore = fdStore;
        Logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <inheritdoc/>
    public abstract IommuBackendFeatures Features { get; }

    /// <summary>The kernel port.</summary>
    protected IKernel Kernel { get; }

    /// <summary>The configuration.</summary>
    protected VfioOptions Options { get; }

    /// <summary>Where the backend logs.</summary>
    protected ILogger Logger { get; }

    /// <summary>The backend's lock: the <c>*Core</c> hooks run under it; a backend takes it for its own state.</summary>
    protected Lock SyncRoot => _lock;

    /// <summary>Where passed fds named by the options are resolved (the given store, else one of the backend's own,
    /// disposed with it).</summary>
    protected VfioFdStore FdStore => _fdStore ?? (_ownStore ??= new VfioFdStore(Kernel));

    /// <inheritdoc/>
    public bool IsAvailable(out string reason) => IsAvailableCore(out reason);

    /// <inheritdoc/>
    public bool CanAttach(VfioDeviceSource device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        return IsAvailableCore(out reason) && CanAttachCore(device, out reason);
    }

    /// <inheritdoc/>
    public AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(space);
        long start = Stopwatch.GetTimestamp();
        using Activity? activity = VfioTelemetry.Start("vfio.device.attach", Name, device.Name);
        try
        {
            AttachedDevice attached = AttachGated(device, space);
            VfioTelemetry.RecordAttach(Name, attached.Name, start);
            return attached;
        }
        catch (Exception e)
        {
            VfioTelemetry.Fail(activity, e);
            throw;
        }
    }

    private AttachedDevice AttachGated(VfioDeviceSource device, DmaSpace space)
    {
        bool gated = false;
        try
        {
            // The space's gate, taken before this backend's lock (a space's disposal takes backends' locks to
            // detach): a disposal that starts now waits for this attach, then detaches the device with the others.
            space.BeginAttach();
            gated = true;
            return AttachLocked(device, space);
        }
        catch
        {
            CloseHandedOverFd(device);
            throw;
        }
        finally
        {
            if (gated)
            {
                space.EndAttach();
            }
        }
    }

    // A device fd handed over (VfioDeviceSource.OwnsDeviceFd) is the library's from the call on: a refused attach
    // closes it, as a detach would, so no backend and no failure path leaves it open.
    private static void CloseHandedOverFd(VfioDeviceSource device)
    {
        if (device.OwnsDeviceFd)
        {
            device.DeviceFd?.Dispose();
        }
    }

    private AttachedDevice AttachLocked(VfioDeviceSource device, DmaSpace space)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_attached.TryGetValue(device.Name, out AttachedDevice? existing))
            {
                throw new VfioDeviceUnusableException(AttachOperation, device.Name,
                    $"the device is already attached, to DMA space '{existing.Space.Name}' through {existing.Container.Name} (the {Name} backend)",
                    "A device is attached once: use the AttachedDevice you have (every device of a space already reaches all of the space's mappings), or dispose it before attaching the device again.");
            }
            if (!IsPassedDevice(device))
            {
                Preflight(device);
            }
            AttachedDevice attached = AttachDeviceCore(device, space);
            _attached[device.Name] = attached;
            LogAttached(Logger, Name, attached.Name, attached.AttachmentDetails, attached.Container.Name, space.Name);
            return attached;
        }
    }

    /// <inheritdoc/>
    public void DetachDevice(AttachedDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!ReferenceEquals(device.Backend, this))
        {
            string by = device.Backend.Name == Name ? $"another {Name} backend instance" : $"the {device.Backend.Name} backend";
            throw new ArgumentException(
                $"{device.Name} was attached by {by}, not by this one; detach it through the backend that attached it (dispose the AttachedDevice).",
                nameof(device));
        }
        if (!device.MarkDetached())
        {
            return;
        }
        using Activity? activity = VfioTelemetry.Start("vfio.device.detach", Name, device.Name);
        lock (_lock)
        {
            try
            {
                DetachDeviceCore(device);
            }
            catch (Exception e)
            {
                VfioTelemetry.Fail(activity, e);
                throw;
            }
            finally
            {
                if (_attached.TryGetValue(device.Name, out AttachedDevice? recorded) && ReferenceEquals(recorded, device))
                {
                    _attached.Remove(device.Name);
                }
                LogDetached(Logger, Name, device.Name, device.Container.Name);
            }
        }
    }

    /// <summary>Detaches every device still attached through this backend (device fds first, then their containers),
    /// then closes the backend's own fds.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Whether the backend's kernel interface exists (or its fd was passed); see <see cref="IsAvailable"/>.</summary>
    /// <param name="reason">Why not, or why yes.</param>
    /// <returns>True when available.</returns>
    protected abstract bool IsAvailableCore(out string reason);

    /// <summary>Whether the backend could attach <paramref name="device"/>, once <see cref="IsAvailableCore"/> said
    /// yes; see <see cref="CanAttach"/>.</summary>
    /// <param name="device">The device.</param>
    /// <param name="reason">Why not, or why yes.</param>
    /// <returns>True when it could.</returns>
    protected abstract bool CanAttachCore(VfioDeviceSource device, out string reason);

    /// <summary>
    /// Attaches a device that is not attached through this backend and passed the preflight, under the lock: opens
    /// it, puts it into a container of <paramref name="space"/> (a new one joins with <see cref="JoinSpace"/>) and
    /// returns it. On failure everything opened along the way is closed again.
    /// </summary>
    /// <param name="device">The device.</param>
    /// <param name="space">The space.</param>
    /// <returns>The attached device, with this backend as its <see cref="AttachedDevice.Backend"/>.</returns>
    protected abstract AttachedDevice AttachDeviceCore(VfioDeviceSource device, DmaSpace space);

    /// <summary>Detaches a device this backend attached, once, under the lock: closes its fd, takes it out of its
    /// container and releases the container when it was the last device (<see cref="LeaveSpace"/>).</summary>
    /// <param name="device">The device (already marked detached).</param>
    protected abstract void DetachDeviceCore(AttachedDevice device);

    /// <summary>True when the backend uses an fd passed for <paramref name="device"/> instead of opening it, so the
    /// sysfs preflight does not apply (the device may not be visible in this process's sysfs).</summary>
    /// <param name="device">The device.</param>
    /// <returns>True for a passed device fd (the default rule: <see cref="VfioDeviceSource.DeviceFd"/> is set).</returns>
    protected virtual bool IsPassedDevice(VfioDeviceSource device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.DeviceFd is not null;
    }

    /// <summary>Detaches the remaining devices; a derived backend then closes its own fds.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }
        AttachedDevice[] remaining;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            remaining = [.. _attached.Values];
        }
        foreach (AttachedDevice device in remaining)
        {
            try
            {
                DetachDevice(device);
            }
            catch (VfioException e)
            {
                LogDetachOnDisposeFailed(Logger, Name, device.Name, e);
            }
        }
        _ownStore?.Dispose();
    }

    /// <summary>Adds a new container to its space, which replays the space's mappings into it.</summary>
    /// <param name="container">A container this backend created for its first device.</param>
    /// <exception cref="VfioDmaException">An existing mapping does not fit the container, or the kernel refused one.</exception>
    protected static void JoinSpace(DmaContainer container)
    {
        ArgumentNullException.ThrowIfNull(container);
        container.Space.Join(container);
    }

    /// <summary>Unmaps everything from a container that has no devices left, takes it out of its space and
    /// releases it.</summary>
    /// <param name="container">The container.</param>
    /// <exception cref="VfioException">The kernel refused an unmap (the container is released all the same).</exception>
    protected static void LeaveSpace(DmaContainer container)
    {
        ArgumentNullException.ThrowIfNull(container);
        container.Space.Leave(container);
    }

    /// <summary>Releases a container of this backend whose devices were detached, under the backend's lock, for a
    /// space's disposal: the detaches and attaches of the backend's other threads (which release containers and reuse
    /// their groups under the same lock) never see it half released. A container that still has a device is left to
    /// that device's detach, in progress on another thread (a detach always takes its device out, and the last one
    /// releases the container): releasing it first would destroy an IOAS a device is still attached to (EBUSY, and the
    /// IOAS stayed in the iommufd).</summary>
    /// <param name="container">A container of this backend.</param>
    /// <exception cref="VfioException">The kernel refused an unmap (the container is released all the same).</exception>
    internal void LeaveLocked(DmaContainer container)
    {
        lock (_lock)
        {
            if (!container.IsReleased && container.Devices.Count == 0)
            {
                container.Space.Leave(container);
            }
        }
    }

    /// <summary>As <see cref="LeaveSpace"/>, for teardown and undo paths: a kernel failure is logged, not thrown.</summary>
    /// <param name="container">The container.</param>
    protected void ReleaseQuietly(DmaContainer container)
    {
        ArgumentNullException.ThrowIfNull(container);
        try
        {
            container.Space.Leave(container);
        }
        catch (VfioException e)
        {
            LogReleaseFailed(Logger, Name, container.Name, e);
        }
    }

    /// <summary>The exception for a device whose IOMMU group is not viable (a member is bound to a host driver), worded
    /// the same on every backend, with the fix for the device's bus.</summary>
    /// <param name="operation">The operation that found it.</param>
    /// <param name="device">The device that was to be attached.</param>
    /// <param name="group">The IOMMU group number.</param>
    /// <param name="offenders">The group's members bound to a host driver (<see cref="VfioSysfs.GetHostDriverMembers"/>).</param>
    /// <param name="errno">The errno that revealed it, if any.</param>
    /// <returns>The exception.</returns>
    protected static VfioDeviceUnusableException GroupNotViable(string operation, VfioDeviceSource device, int group,
        IReadOnlyList<VfioGroupMember> offenders, Errno errno = Errno.None)
    {
        ArgumentNullException.ThrowIfNull(device);
        return VfioDeviceUnusableException.GroupNotViable(operation, device.Name, device.Bus, group, offenders, errno);
    }

    private void Preflight(VfioDeviceSource device)
    {
        string sysfs = device.SysfsDirectory();
        if (!Kernel.Exists(sysfs))
        {
            throw new VfioDeviceUnusableException(AttachOperation, device.Name, $"there is no device {sysfs}",
                device.Bus.MissingDeviceHint(), Errno.ENOENT);
        }
        string? driver = VfioSysfs.GetDriver(Kernel, sysfs);
        if (VfioSysfs.IsVfioDriver(driver))
        {
            return;
        }
        throw VfioDeviceUnusableException.PciBridge(Kernel, AttachOperation, device) ?? new VfioDeviceUnusableException(AttachOperation, device.Name,
            driver is null ? "the device is bound to no driver, not to a VFIO driver" : $"the device is bound to {driver}, not to a VFIO driver",
            device.BindHint(driver));
    }

    // The backend-neutral log lines; a backend logs its own steps (groups, HWPTs) itself.
    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "{Backend}: attached {Device} ({Details}) to {Container} of DMA space '{Space}'")]
    private static partial void LogAttached(ILogger logger, string backend, string device, string details, string container, string space);

    // One line per detach, whoever asked (the attached device, the space, the backend's dispose).
    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "{Backend}: detached {Device} from {Container}")]
    private static partial void LogDetached(ILogger logger, string backend, string device, string container);

    // Dispose goes on with the next device.
    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Backend}: detaching {Device} failed while the backend was disposed")]
    private static partial void LogDetachOnDisposeFailed(ILogger logger, string backend, string device, Exception exception);

    // Teardown and undo paths go on.
    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "{Backend}: releasing {Container} reported a failure")]
    private static partial void LogReleaseFailed(ILogger logger, string backend, string container, Exception exception);
}
