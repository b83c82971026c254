// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>What a VFIO-related file descriptor is, as the kernel reports it.</summary>
public enum VfioFdKind
{
    /// <summary>Not a VFIO or iommufd object.</summary>
    Unknown = 0,
    /// <summary>An iommufd, <c>/dev/iommu</c> (misc device <c>iommu</c>).</summary>
    IommuFd,
    /// <summary>A legacy container, <c>/dev/vfio/vfio</c> (misc device <c>vfio</c>; with
    /// <c>CONFIG_IOMMUFD_VFIO_CONTAINER</c> iommufd serves this node).</summary>
    Container,
    /// <summary>An IOMMU group, <c>/dev/vfio/N</c>.</summary>
    Group,
    /// <summary>A no-IOMMU group, <c>/dev/vfio/noiommu-N</c>.</summary>
    NoIommuGroup,
    /// <summary>A device cdev, <c>/dev/vfio/devices/vfioN</c>.</summary>
    DeviceCdev,
    /// <summary>A device fd returned by <c>VFIO_GROUP_GET_DEVICE_FD</c> (anonymous inode <c>[vfio-device]</c>).</summary>
    Device,
}
