// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): the sPAPR TCE IOMMU backend (POWER) and EEH.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_iommu_spapr_tce_ddw_info</c>: dynamic DMA window limits, inside <see cref="vfio_iommu_spapr_tce_info"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_spapr_tce_ddw_info
{
    /// <summary>Output: bitmap of supported IOMMU page sizes (4K, 64K, 16M…).</summary>
    public ulong pgsizes;

    /// <summary>Output: how many dynamic windows may be created.</summary>
    public uint max_dynamic_windows_supported;

    /// <summary>Output: maximum number of TCE table levels.</summary>
    public uint levels;
}

/// <summary><c>struct vfio_iommu_spapr_tce_info</c>, the argument of <c>VFIO_IOMMU_SPAPR_TCE_GET_INFO</c> (32 bytes; the kernel needs 16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_spapr_tce_info
{
    /// <summary>Input: size of the structure; <see cref="ddw"/> is written only if it is at least 32.</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_IOMMU_SPAPR_INFO_DDW</c> when dynamic windows are available (v2).</summary>
    public uint flags;

    /// <summary>Output: bus address of the default 32-bit DMA window.</summary>
    public uint dma32_window_start;

    /// <summary>Output: size in bytes of the default 32-bit DMA window.</summary>
    public uint dma32_window_size;

    /// <summary>Output: dynamic DMA window information (zero without <c>VFIO_IOMMU_SPAPR_INFO_DDW</c>).</summary>
    public vfio_iommu_spapr_tce_ddw_info ddw;
}

/// <summary><c>struct vfio_eeh_pe_err</c>: error to inject with <c>VFIO_EEH_PE_INJECT_ERR</c>, inside <see cref="vfio_eeh_pe_op"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_eeh_pe_err
{
    /// <summary>Input: 0 = 32-bit error, 1 = 64-bit error.</summary>
    public uint type;

    /// <summary>Input: error function, 0–19 (load/store/DMA address or data…).</summary>
    public uint func;

    /// <summary>Input: address to match.</summary>
    public ulong addr;

    /// <summary>Input: mask applied to <see cref="addr"/>.</summary>
    public ulong mask;
}

/// <summary><c>struct vfio_eeh_pe_op</c>, the argument of <c>VFIO_EEH_PE_OP</c> (40 bytes; the kernel needs 12).</summary>
/// <remarks>In C <see cref="err"/> sits in a one-member anonymous union; the layout is the same.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_eeh_pe_op
{
    /// <summary>Input: size of the structure (at least 40 for <c>VFIO_EEH_PE_INJECT_ERR</c>).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: <c>VFIO_EEH_PE_*</c> operation.</summary>
    public uint op;

    /// <summary>Input (<c>VFIO_EEH_PE_INJECT_ERR</c>): the error to inject.</summary>
    public vfio_eeh_pe_err err;
}

/// <summary><c>struct vfio_iommu_spapr_register_memory</c>, the argument of <c>VFIO_IOMMU_SPAPR_REGISTER_MEMORY</c> and <c>VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY</c> (v2).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_spapr_register_memory
{
    /// <summary>Input: size of the structure (24).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: page-aligned process virtual address of the memory to pre-register.</summary>
    public ulong vaddr;

    /// <summary>Input: page-aligned size in bytes.</summary>
    public ulong size;
}

/// <summary><c>struct vfio_iommu_spapr_tce_create</c>, the argument of <c>VFIO_IOMMU_SPAPR_TCE_CREATE</c> (v2, 40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_spapr_tce_create
{
    /// <summary>Input: size of the structure (40).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: log2 of the window's IOMMU page size.</summary>
    public uint page_shift;

    /// <summary>Reserved.</summary>
    public uint __resv1;

    /// <summary>Input: window size in bytes.</summary>
    public ulong window_size;

    /// <summary>Input: number of TCE table levels.</summary>
    public uint levels;

    /// <summary>Reserved.</summary>
    public uint __resv2;

    /// <summary>Output: bus address where the platform placed the window.</summary>
    public ulong start_addr;
}

/// <summary><c>struct vfio_iommu_spapr_tce_remove</c>, the argument of <c>VFIO_IOMMU_SPAPR_TCE_REMOVE</c> (v2, 16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_iommu_spapr_tce_remove
{
    /// <summary>Input: size of the structure (16).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Input: bus address of the window to remove (its <c>start_addr</c>).</summary>
    public ulong start_addr;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_iommu_spapr_tce_info.flags</c>: dynamic DMA windows are supported; <c>ddw</c> is valid.</summary>
    public const uint VFIO_IOMMU_SPAPR_INFO_DDW = 1u << 0;

    /// <summary><c>vfio_eeh_pe_op.op</c>: disable EEH (no-op).</summary>
    public const uint VFIO_EEH_PE_DISABLE = 0;

    /// <summary><c>vfio_eeh_pe_op.op</c>: enable EEH for the PE.</summary>
    public const uint VFIO_EEH_PE_ENABLE = 1;

    /// <summary><c>vfio_eeh_pe_op.op</c>: re-enable MMIO of a frozen PE.</summary>
    public const uint VFIO_EEH_PE_UNFREEZE_IO = 2;

    /// <summary><c>vfio_eeh_pe_op.op</c>: re-enable DMA of a frozen PE.</summary>
    public const uint VFIO_EEH_PE_UNFREEZE_DMA = 3;

    /// <summary><c>vfio_eeh_pe_op.op</c>: return the PE state (<c>VFIO_EEH_PE_STATE_*</c>) as the ioctl result.</summary>
    public const uint VFIO_EEH_PE_GET_STATE = 4;

    /// <summary><c>VFIO_EEH_PE_GET_STATE</c> result: normal (MMIO and DMA enabled).</summary>
    public const int VFIO_EEH_PE_STATE_NORMAL = 0;

    /// <summary><c>VFIO_EEH_PE_GET_STATE</c> result: reset asserted.</summary>
    public const int VFIO_EEH_PE_STATE_RESET = 1;

    /// <summary><c>VFIO_EEH_PE_GET_STATE</c> result: MMIO and DMA stopped.</summary>
    public const int VFIO_EEH_PE_STATE_STOPPED = 2;

    /// <summary><c>VFIO_EEH_PE_GET_STATE</c> result: DMA stopped, MMIO enabled.</summary>
    public const int VFIO_EEH_PE_STATE_STOPPED_DMA = 4;

    /// <summary><c>VFIO_EEH_PE_GET_STATE</c> result: state unavailable.</summary>
    public const int VFIO_EEH_PE_STATE_UNAVAIL = 5;

    /// <summary><c>vfio_eeh_pe_op.op</c>: deassert PE reset.</summary>
    public const uint VFIO_EEH_PE_RESET_DEACTIVATE = 5;

    /// <summary><c>vfio_eeh_pe_op.op</c>: assert hot reset.</summary>
    public const uint VFIO_EEH_PE_RESET_HOT = 6;

    /// <summary><c>vfio_eeh_pe_op.op</c>: assert fundamental reset.</summary>
    public const uint VFIO_EEH_PE_RESET_FUNDAMENTAL = 7;

    /// <summary><c>vfio_eeh_pe_op.op</c>: reconfigure the PE's bridges after a reset.</summary>
    public const uint VFIO_EEH_PE_CONFIGURE = 8;

    /// <summary><c>vfio_eeh_pe_op.op</c>: inject the error in <c>err</c>.</summary>
    public const uint VFIO_EEH_PE_INJECT_ERR = 9;

    /// <summary><c>VFIO_IOMMU_SPAPR_TCE_GET_INFO</c> (sPAPR container; <c>struct vfio_iommu_spapr_tce_info *</c>, in/out). Same number as <c>VFIO_IOMMU_GET_INFO</c>.</summary>
    public static readonly uint VFIO_IOMMU_SPAPR_TCE_GET_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 12);

    /// <summary><c>VFIO_IOMMU_ENABLE</c> (sPAPR v1 container; no argument). Same number as <c>VFIO_DEVICE_GET_GFX_DMABUF</c>.</summary>
    public static readonly uint VFIO_IOMMU_ENABLE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 15);

    /// <summary><c>VFIO_IOMMU_DISABLE</c> (sPAPR v1 container; no argument). Same number as <c>VFIO_DEVICE_IOEVENTFD</c>.</summary>
    public static readonly uint VFIO_IOMMU_DISABLE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 16);

    /// <summary><c>VFIO_IOMMU_SPAPR_REGISTER_MEMORY</c> (sPAPR v2 container; <c>struct vfio_iommu_spapr_register_memory *</c>, in). Same number as <c>VFIO_DEVICE_FEATURE</c>.</summary>
    public static readonly uint VFIO_IOMMU_SPAPR_REGISTER_MEMORY = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 17);

    /// <summary><c>VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY</c> (sPAPR v2 container; <c>struct vfio_iommu_spapr_register_memory *</c>, in). Same number as <c>VFIO_DEVICE_BIND_IOMMUFD</c>.</summary>
    public static readonly uint VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 18);

    /// <summary><c>VFIO_IOMMU_SPAPR_TCE_CREATE</c> (sPAPR v2 container; <c>struct vfio_iommu_spapr_tce_create *</c>, in/out). Same number as <c>VFIO_DEVICE_ATTACH_IOMMUFD_PT</c>.</summary>
    public static readonly uint VFIO_IOMMU_SPAPR_TCE_CREATE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 19);

    /// <summary><c>VFIO_IOMMU_SPAPR_TCE_REMOVE</c> (sPAPR v2 container; <c>struct vfio_iommu_spapr_tce_remove *</c>, in). Same number as <c>VFIO_DEVICE_DETACH_IOMMUFD_PT</c>.</summary>
    public static readonly uint VFIO_IOMMU_SPAPR_TCE_REMOVE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 20);

    /// <summary><c>VFIO_EEH_PE_OP</c> (sPAPR container; <c>struct vfio_eeh_pe_op *</c>, in; GET_STATE returns the state). Same number as <c>VFIO_MIG_GET_PRECOPY_INFO</c>.</summary>
    public static readonly uint VFIO_EEH_PE_OP = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 21);
}
