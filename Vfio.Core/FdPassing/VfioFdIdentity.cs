// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>What <see cref="VfioFdValidator.Identify"/> found an fd to be.</summary>
/// <param name="Kind">The kind of object.</param>
/// <param name="Name">Its kernel name: <c>iommu</c>, <c>vfio</c>, the group number, the cdev name (<c>vfio0</c>), or
/// <c>[vfio-device]</c>; what sysfs or /proc showed for an unknown fd.</param>
/// <param name="SysfsPath">The object's sysfs directory for character devices, e.g.
/// <c>/sys/devices/pci0000:00/0000:00:02.0/vfio-dev/vfio0</c>.</param>
/// <param name="DeviceName">For a cdev, the device it belongs to (the parent of <c>vfio-dev</c>, e.g. <c>0000:00:02.0</c>).</param>
public readonly record struct VfioFdIdentity(VfioFdKind Kind, string Name, string? SysfsPath, string? DeviceName);
