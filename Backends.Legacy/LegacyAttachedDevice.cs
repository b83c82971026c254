// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Core;

namespace Vfio.Backends.Legacy;

/// <summary>A device the legacy backend attached: opened with <c>VFIO_GROUP_GET_DEVICE_FD</c> on its group, which is
/// set to a <see cref="LegacyContainer"/>.</summary>
public sealed class LegacyAttachedDevice : AttachedDevice
{
    private readonly LegacyBackend _backend;

    internal LegacyAttachedDevice(LegacyBackend backend, LegacyContainer container, VfioDevice device, VfioDeviceSource source, LegacyGroup group)
        : base(backend, container, device, source)
    {
        _backend = backend;
        Group = group;
    }

    /// <inheritdoc/>
    public override int? IommuGroup => Group.Number;

    /// <summary>The container the device's group is set to.</summary>
    public LegacyContainer LegacyContainer => (LegacyContainer)Container;

    /// <summary>The fd of the device's VFIO group, e.g. for the group-fd array of a PCI hot reset
    /// (<see cref="IommuBackendFeatures.HotResetByGroupFds"/>). The backend owns it (or its launcher, for a passed fd):
    /// never dispose it; it is closed when the group's last device detaches.</summary>
    public SafeFileHandle GroupFd => Group.Fd;

    /// <summary>True when the group is a no-IOMMU group (devices DMA to physical addresses, unprotected).</summary>
    public bool IsNoIommu => Group.NoIommu;

    internal LegacyGroup Group { get; }

    /// <summary>The legacy proof: the fds of every group the backend holds (the kernel takes the fds of the groups a
    /// reset affects; <see cref="HotResetProof.SelectGroupFds"/> picks those).</summary>
    /// <returns>The proof.</returns>
    protected override HotResetProof CreateHotResetProof() => GroupFdProof(_backend.HeldGroups());
}
