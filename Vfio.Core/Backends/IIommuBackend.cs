// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// An IOMMU backend: attaches devices into <see cref="DmaSpace"/>s and detaches them again, hiding how (a legacy
/// container with groups, an iommufd IOAS with device cdevs, an sPAPR TCE container). Device code only ever sees
/// the <see cref="AttachedDevice"/> it gets back.
/// </summary>
/// <remarks>
/// <para>
/// A backend creates one container per DMA space and shares it: a second device of the same space joins the
/// existing container when the kernel allows it (the legacy <c>VFIO_GROUP_SET_CONTAINER</c> succeeds, iommufd
/// attaches to the space's IOAS), and a device of another space gets its own. A container that joins a space later
/// is replayed the mappings the space already has. When the last device of a container detaches, the container's
/// mappings are unmapped and the container is released; the space keeps its mappings and replays them to the next.
/// </para>
/// <para>
/// Teardown follows ownership: devices (their fds closed first), then mappings, then the container (group or IOAS),
/// then the backend's own fds (<c>/dev/iommu</c>) when the backend is disposed.
/// </para>
/// <para>
/// A backend derives from <see cref="IommuBackend"/>, which implements this interface once (checks, lock, attached
/// devices, preflight, logs) and gives its containers their way into the space.
/// </para>
/// </remarks>
public interface IIommuBackend
{
    /// <summary>The backend's configuration name: <c>legacy</c>, <c>iommufd</c> or <c>spapr-tce</c>.</summary>
    string Name { get; }

    /// <summary>What this backend can do, whatever the kernel offers (a container's
    /// <see cref="DmaContainer.Features"/> says what one container actually has).</summary>
    IommuBackendFeatures Features { get; }

    /// <summary>
    /// Whether this backend can work on this machine at all, without a particular device and without opening
    /// anything: the kernel interface it needs exists (<c>/dev/vfio/vfio</c> for legacy, <c>/dev/iommu</c> for
    /// iommufd) or a management layer passed the fd. Automatic selection without a device asks the backends in order
    /// of preference.
    /// </summary>
    /// <param name="reason">Why not (the missing node and the kernel option behind it), or why yes, for the log.</param>
    /// <returns>True when the backend's kernel interface is there.</returns>
    bool IsAvailable(out string reason);

    /// <summary>
    /// Whether this backend could attach <paramref name="device"/> on this machine, without opening anything: the
    /// kernel interfaces it needs exist (e.g. <c>/dev/iommu</c> and the device's cdev for iommufd). Automatic
    /// selection asks the backends in order of preference.
    /// </summary>
    /// <param name="device">The device.</param>
    /// <param name="reason">Why not (the missing kernel feature, a device without a cdev), or why yes, for the log.</param>
    /// <returns>True when the backend could attach the device.</returns>
    bool CanAttach(VfioDeviceSource device, out string reason);

    /// <summary>Attaches <paramref name="device"/> into <paramref name="space"/>: the device can then reach every
    /// mapping of the space, and its fd is open.</summary>
    /// <param name="device">The device: a sysfs name or path, or an fd a management layer passed.</param>
    /// <param name="space">The DMA space the device joins.</param>
    /// <returns>The attached device; disposing it detaches it.</returns>
    /// <exception cref="VfioDeviceUnusableException">The device cannot be used as it is (group not viable, already
    /// attached, its group in another space, no-IOMMU without opt-in, not bound to a VFIO driver).</exception>
    /// <exception cref="VfioBackendUnavailableException">The kernel lacks what this backend needs.</exception>
    /// <exception cref="VfioException">A kernel call failed; nothing opened along the way stays open.</exception>
    AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space);

    /// <summary>Detaches a device this backend attached: closes its fd, leaves its group or detaches it from its
    /// IOAS, and releases the container when it was the last device in it. Detaching twice does nothing.</summary>
    /// <param name="device">The device.</param>
    /// <exception cref="ArgumentException"><paramref name="device"/> was attached by another backend.</exception>
    void DetachDevice(AttachedDevice device);
}
