// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// A device a backend attached into a <see cref="DmaSpace"/>: its open <see cref="VfioDevice"/>, the
/// <see cref="DmaContainer"/> it joined and the backend that did it. Disposing it detaches it.
/// </summary>
/// <remarks>Backends derive from it to keep what they need to detach (the group, the iommufd device id).</remarks>
public abstract class AttachedDevice : IDisposable
{
    private readonly Lock _lock = new();

    /// <summary>Creates the attached device's common state.</summary>
    /// <param name="backend">The backend that attached it.</param>
    /// <param name="container">The container it joined.</param>
    /// <param name="device">The open device.</param>
    /// <param name="source">How it was named.</param>
    protected AttachedDevice(IIommuBackend backend, DmaContainer container, VfioDevice device, VfioDeviceSource source)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(container);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(source);
        Backend = backend;
        Container = container;
        Device = device;
        Source = source;
    }

    /// <summary>The backend that attached the device.</summary>
    public IIommuBackend Backend { get; }

    /// <summary>The container the device joined.</summary>
    public DmaContainer Container { get; }

    /// <summary>The space the device reaches.</summary>
    public DmaSpace Space => Container.Space;

    /// <summary>The open device: regions, IRQs, reset.</summary>
    public VfioDevice Device { get; }

    /// <summary>How the device was named.</summary>
    public VfioDeviceSource Source { get; }

    /// <summary>The device's name, e.g. <c>0000:00:02.0</c>.</summary>
    public string Name => Device.Name;

    /// <summary>The device's IOMMU group number, when known.</summary>
    public abstract int? IommuGroup { get; }

    /// <summary>True until the device is detached.</summary>
    public bool IsAttached { get; private set; } = true;

    /// <summary>Detaches the device (<see cref="IIommuBackend.DetachDevice"/>); does nothing when already detached.</summary>
    public void Dispose()
    {
        if (IsAttached)
        {
            Backend.DetachDevice(this);
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// What proves, for a PCI hot reset of this device (<c>VFIO_DEVICE_PCI_HOT_RESET</c>), that the process owns the
    /// devices the reset affects, in the form of the device's backend: the group fds it holds (legacy) or the device-id
    /// form (iommufd). Device code builds the reset from it without knowing the backend.
    /// </summary>
    /// <returns>The proof; valid while the device is attached.</returns>
    /// <exception cref="ObjectDisposedException">The device is detached.</exception>
    public HotResetProof GetHotResetProof()
    {
        ObjectDisposedException.ThrowIf(!IsAttached, this);
        return CreateHotResetProof();
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Backend.Name}, {Container.Name})";

    /// <summary>What this device's backend proves a hot reset with (see <see cref="GetHotResetProof"/>).</summary>
    /// <returns>The proof.</returns>
    protected abstract HotResetProof CreateHotResetProof();

    /// <summary>The group-fd proof (legacy containers): the groups the backend holds open.</summary>
    /// <param name="groups">Each open group's number and fd.</param>
    /// <returns>The proof.</returns>
    protected static HotResetProof GroupFdProof(IEnumerable<HotResetGroup> groups) => HotResetProof.ByGroupFds(groups);

    /// <summary>The device-id proof (a device bound to an iommufd).</summary>
    /// <param name="deviceId">The device's iommufd object id.</param>
    /// <returns>The proof.</returns>
    protected static HotResetProof DeviceIdProof(uint deviceId) => HotResetProof.ByDeviceId(deviceId);

    /// <summary>The backend's details of the attachment for the attach log line, e.g. <c>group 2</c> or
    /// <c>devid 1, HWPT 3</c>.</summary>
    protected internal virtual string AttachmentDetails
        => IommuGroup is int group ? "group " + group.ToString(System.Globalization.CultureInfo.InvariantCulture) : "no IOMMU group";

    /// <summary>Marks the device detached; <see cref="IommuBackend.DetachDevice"/> (or a backend that implements
    /// <see cref="IIommuBackend"/> itself) calls it as the first step of a detach.</summary>
    /// <returns>False when it was already detached (the caller then does nothing).</returns>
    protected internal bool MarkDetached()
    {
        lock (_lock)
        {
            if (!IsAttached)
            {
                return false;
            }
            IsAttached = false;
            return true;
        }
    }
}
