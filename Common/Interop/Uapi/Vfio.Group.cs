// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): groups.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_group_status</c>, the argument of <c>VFIO_GROUP_GET_STATUS</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_group_status
{
    /// <summary>Size of the structure as passed by the caller.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_GROUP_FLAGS_*</c>.</summary>
    public uint flags;
}

internal static partial class VfioUapi
{
    /// <summary>The group is viable: every device in it is bound to a VFIO driver or to none.</summary>
    public const uint VFIO_GROUP_FLAGS_VIABLE = 1u << 0;

    /// <summary>The group is attached to a container.</summary>
    public const uint VFIO_GROUP_FLAGS_CONTAINER_SET = 1u << 1;

    /// <summary><c>VFIO_GROUP_GET_STATUS</c> (group fd; <c>struct vfio_group_status *</c>).</summary>
    public static readonly uint VFIO_GROUP_GET_STATUS = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 3);

    /// <summary><c>VFIO_GROUP_SET_CONTAINER</c> (group fd; pointer to the <c>__s32</c> container or iommufd fd).</summary>
    public static readonly uint VFIO_GROUP_SET_CONTAINER = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 4);

    /// <summary><c>VFIO_GROUP_UNSET_CONTAINER</c> (group fd; no argument).</summary>
    public static readonly uint VFIO_GROUP_UNSET_CONTAINER = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 5);

    /// <summary><c>VFIO_GROUP_GET_DEVICE_FD</c> (group fd; pointer to the NUL-terminated device name; returns the new fd).</summary>
    public static readonly uint VFIO_GROUP_GET_DEVICE_FD = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 6);
}
