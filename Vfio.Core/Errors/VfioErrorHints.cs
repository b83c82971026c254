// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>What to do about the common failures, keyed by errno and operation (Linux 6.12 behaviour).</summary>
internal static class VfioErrorHints
{
    internal static string? For(Errno errno, string operation, string? objectName) => (errno, operation) switch
    {
        (Errno.ENOENT, "open") when objectName == "/dev/iommu" =>
            "The kernel has no iommufd: build it with CONFIG_IOMMUFD (or load the iommufd module), or use the legacy backend.",
        (Errno.ENOENT, "open") when objectName == "/dev/vfio/vfio" =>
            "The VFIO container device is missing: load vfio-pci (modprobe vfio-pci) or build the kernel with CONFIG_VFIO_CONTAINER.",
        (Errno.ENOENT, "open") when objectName?.StartsWith("/dev/vfio/devices/", StringComparison.Ordinal) == true =>
            "The device has no VFIO cdev: the kernel needs CONFIG_VFIO_DEVICE_CDEV and the device must be bound to a VFIO driver.",
        (Errno.ENOENT, "open") when objectName?.StartsWith("/dev/vfio/", StringComparison.Ordinal) == true =>
            "The IOMMU group has no VFIO node: bind every device of the group to vfio-pci (driver_override + bind).",
        (Errno.EACCES or Errno.EPERM, "open") =>
            "The process may not open this node: grant read/write access to it (a udev rule, or membership of the group that owns it), or have a privileged launcher pass the fd.",
        // Linux 6.12 refuses a group's open while the group is open or a device of it is bound through its cdev
        // (vfio_group_fops_open), from this process or another.
        (Errno.EBUSY, "open") when objectName?.StartsWith("/dev/vfio/", StringComparison.Ordinal) == true && objectName != "/dev/vfio/vfio" =>
            "The IOMMU group is already open (a group can be opened once), or one of its devices is open through its cdev /dev/vfio/devices/vfioN (e.g. by the iommufd backend, here or in another process): detach it there first (fuser -v /dev/vfio/N /dev/vfio/devices/* shows who holds it), or share the group's fd.",
        (Errno.EBUSY, "open") =>
            "The node is already open elsewhere (a group can be opened once); close the other user or share its fd.",
        (Errno.EFAULT, "VFIO_IOMMU_MAP_DMA" or "IOMMU_IOAS_MAP") =>
            "The host address range is not memory this process has mapped (or not with the access asked for): map memory the process owns, such as a DmaBuffer, and keep it mapped for as long as the DMA mapping exists.",
        (Errno.EPERM, "VFIO_SET_IOMMU") =>
            "The IOMMU lacks interrupt remapping: enable it (e.g. intel_iommu=on with interrupt remapping) or, accepting the risk, set vfio_iommu_type1.allow_unsafe_interrupts=1.",
        (Errno.ENOMEM, "VFIO_IOMMU_MAP_DMA" or "IOMMU_IOAS_MAP") =>
            "Pinning the pages exceeds RLIMIT_MEMLOCK: raise the locked-memory limit (ulimit -l, LimitMEMLOCK=) to cover every DMA mapping.",
        (Errno.ENOSPC, "VFIO_IOMMU_MAP_DMA") =>
            "Type1's dma_entry_limit is reached: use fewer, larger mappings or raise vfio_iommu_type1.dma_entry_limit.",
        (Errno.EEXIST, "VFIO_IOMMU_MAP_DMA" or "IOMMU_IOAS_MAP") =>
            "The IOVA range overlaps an existing mapping: unmap it first or choose another IOVA.",
        (Errno.EBUSY, "VFIO_GROUP_GET_DEVICE_FD") =>
            "The device is already open through another fd or its cdev: close that first.",
        (Errno.ENOTTY, _) =>
            "The kernel does not know this ioctl on this kind of fd: check the fd's type and the kernel's version and configuration.",
        _ => null,
    };
}
