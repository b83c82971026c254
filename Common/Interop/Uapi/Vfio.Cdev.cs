// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): the device cdev (/dev/vfio/devices/vfioN) bound to an iommufd.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_device_bind_iommufd</c>, the argument of <c>VFIO_DEVICE_BIND_IOMMUFD</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_bind_iommufd
{
    /// <summary>Input: size of the structure (16).</summary>
    public uint argsz;

    /// <summary>Input: must be 0 in 6.12.</summary>
    public uint flags;

    /// <summary>Input: the iommufd (<c>/dev/iommu</c>) fd to bind to.</summary>
    public int iommufd;

    /// <summary>Output: the device's object id in that iommufd.</summary>
    public uint out_devid;
}

/// <summary><c>struct vfio_device_attach_iommufd_pt</c>, the argument of <c>VFIO_DEVICE_ATTACH_IOMMUFD_PT</c> (12 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_attach_iommufd_pt
{
    /// <summary>Input: size of the structure (12).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>In/out: IOAS or HWPT id to attach to; the kernel writes the HWPT actually attached.</summary>
    public uint pt_id;
}

/// <summary><c>struct vfio_device_detach_iommufd_pt</c>, the argument of <c>VFIO_DEVICE_DETACH_IOMMUFD_PT</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_detach_iommufd_pt
{
    /// <summary>Input: size of the structure (8).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;
}

internal static partial class VfioUapi
{
    /// <summary><c>VFIO_DEVICE_BIND_IOMMUFD</c> (device cdev fd; <c>struct vfio_device_bind_iommufd *</c>, in/out). Same number as <c>VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY</c>.</summary>
    public static readonly uint VFIO_DEVICE_BIND_IOMMUFD = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 18);

    /// <summary><c>VFIO_DEVICE_ATTACH_IOMMUFD_PT</c> (bound cdev fd; <c>struct vfio_device_attach_iommufd_pt *</c>, in/out). Same number as <c>VFIO_IOMMU_SPAPR_TCE_CREATE</c>.</summary>
    public static readonly uint VFIO_DEVICE_ATTACH_IOMMUFD_PT = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 19);

    /// <summary><c>VFIO_DEVICE_DETACH_IOMMUFD_PT</c> (bound cdev fd; <c>struct vfio_device_detach_iommufd_pt *</c>, in). Same number as <c>VFIO_IOMMU_SPAPR_TCE_REMOVE</c>.</summary>
    public static readonly uint VFIO_DEVICE_DETACH_IOMMUFD_PT = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 20);
}
