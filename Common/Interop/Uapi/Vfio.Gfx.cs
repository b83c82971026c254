// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): mediated-device display planes (vGPU).
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_device_gfx_plane_info</c>, the argument of <c>VFIO_DEVICE_QUERY_GFX_PLANE</c> (mdev GPUs only).</summary>
/// <remarks><see cref="region_index"/> and <see cref="dmabuf_id"/> share offset 56 (an anonymous union in C).</remarks>
[StructLayout(LayoutKind.Explicit)]
internal struct vfio_device_gfx_plane_info
{
    /// <summary>Input: size of the structure (64).</summary>
    [FieldOffset(0)]
    public uint argsz;

    /// <summary>Input: <c>VFIO_GFX_PLANE_TYPE_*</c>.</summary>
    [FieldOffset(4)]
    public uint flags;

    /// <summary>Input: DRM plane type (<c>DRM_PLANE_TYPE_*</c>).</summary>
    [FieldOffset(8)]
    public uint drm_plane_type;

    /// <summary>Output: DRM fourcc format of the plane (0 if the plane is disabled).</summary>
    [FieldOffset(12)]
    public uint drm_format;

    /// <summary>Output: DRM format modifier (tiling).</summary>
    [FieldOffset(16)]
    public ulong drm_format_mod;

    /// <summary>Output: width in pixels.</summary>
    [FieldOffset(24)]
    public uint width;

    /// <summary>Output: height in pixels.</summary>
    [FieldOffset(28)]
    public uint height;

    /// <summary>Output: bytes per line.</summary>
    [FieldOffset(32)]
    public uint stride;

    /// <summary>Output: plane size in bytes (page aligned).</summary>
    [FieldOffset(36)]
    public uint size;

    /// <summary>Output: horizontal position of a cursor plane.</summary>
    [FieldOffset(40)]
    public uint x_pos;

    /// <summary>Output: vertical position of a cursor plane.</summary>
    [FieldOffset(44)]
    public uint y_pos;

    /// <summary>Output: cursor hotspot x (0xFFFFFFFF if unknown).</summary>
    [FieldOffset(48)]
    public uint x_hot;

    /// <summary>Output: cursor hotspot y (0xFFFFFFFF if unknown).</summary>
    [FieldOffset(52)]
    public uint y_hot;

    /// <summary>Output (<c>VFIO_GFX_PLANE_TYPE_REGION</c>): region index holding the plane.</summary>
    [FieldOffset(56)]
    public uint region_index;

    /// <summary>Output (<c>VFIO_GFX_PLANE_TYPE_DMABUF</c>): id to pass to <c>VFIO_DEVICE_GET_GFX_DMABUF</c>.</summary>
    [FieldOffset(56)]
    public uint dmabuf_id;

    /// <summary>Reserved.</summary>
    [FieldOffset(60)]
    public uint reserved;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_device_gfx_plane_info.flags</c>: only probe whether the given plane type is supported.</summary>
    public const uint VFIO_GFX_PLANE_TYPE_PROBE = 1u << 0;

    /// <summary><c>vfio_device_gfx_plane_info.flags</c>: the plane is exported as a dma-buf.</summary>
    public const uint VFIO_GFX_PLANE_TYPE_DMABUF = 1u << 1;

    /// <summary><c>vfio_device_gfx_plane_info.flags</c>: the plane lives in a device region.</summary>
    public const uint VFIO_GFX_PLANE_TYPE_REGION = 1u << 2;

    /// <summary><c>VFIO_DEVICE_QUERY_GFX_PLANE</c> (mdev device fd; <c>struct vfio_device_gfx_plane_info *</c>, in/out). Same number as <c>VFIO_IOMMU_UNMAP_DMA</c>.</summary>
    public static readonly uint VFIO_DEVICE_QUERY_GFX_PLANE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 14);

    /// <summary><c>VFIO_DEVICE_GET_GFX_DMABUF</c> (mdev device fd; pointer to the <c>__u32</c> dmabuf id; returns a dma-buf fd). Same number as <c>VFIO_IOMMU_ENABLE</c>.</summary>
    public static readonly uint VFIO_DEVICE_GET_GFX_DMABUF = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 15);
}
