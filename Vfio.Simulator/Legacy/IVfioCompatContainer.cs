// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>An iommufd used where a container fd goes (vfio_group_ioctl_set_container, drivers/iommu/iommufd/vfio_compat.c).</summary>
internal interface IVfioCompatContainer
{
    /// <summary>VFIO_GROUP_SET_CONTAINER with this iommufd. Returns 0 or <c>-errno</c>.</summary>
    int AttachGroup(SimGroup group);

    /// <summary>The group leaves.</summary>
    void DetachGroup(SimGroup group);

    /// <summary>The first open of a device through a group attached to this iommufd: bind and attach to the compat IOAS.</summary>
    int OpenDevice(SimDevice device);

    /// <summary>The last device fd of a device opened through a group attached to this iommufd was closed: unbind.</summary>
    void CloseDevice(SimDevice device);
}
