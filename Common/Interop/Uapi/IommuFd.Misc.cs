// SPDX-License-Identifier: MIT
// include/uapi/linux/iommufd.h (Linux 6.12): object destruction, options and I/O page fault queues.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct iommu_destroy</c>, the argument of <c>IOMMU_DESTROY</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_destroy
{
    /// <summary>Input: size of the structure (8).</summary>
    public uint size;

    /// <summary>Input: id of the object to destroy (IOAS, HWPT, fault queue…).</summary>
    public uint id;
}

/// <summary><c>struct iommu_option</c>, the argument of <c>IOMMU_OPTION</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_option
{
    /// <summary>Input: size of the structure (24).</summary>
    public uint size;

    /// <summary>Input: <c>IOMMU_OPTION_*</c>.</summary>
    public uint option_id;

    /// <summary>Input: <c>IOMMU_OPTION_OP_SET</c> or <c>IOMMU_OPTION_OP_GET</c>.</summary>
    public ushort op;

    /// <summary>Must be 0.</summary>
    public ushort __reserved;

    /// <summary>Input: object the option applies to (0 for the iommufd-wide <c>IOMMU_OPTION_RLIMIT_MODE</c>).</summary>
    public uint object_id;

    /// <summary>In (SET) / out (GET): the option value.</summary>
    public ulong val64;
}

/// <summary><c>struct iommu_fault_alloc</c>, the argument of <c>IOMMU_FAULT_QUEUE_ALLOC</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_fault_alloc
{
    /// <summary>Input: size of the structure (16).</summary>
    public uint size;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Output: id of the fault queue object (for <c>iommu_hwpt_alloc.fault_id</c>).</summary>
    public uint out_fault_id;

    /// <summary>Output: fd to read <see cref="iommu_hwpt_pgfault"/> records from and write <see cref="iommu_hwpt_page_response"/> to.</summary>
    public uint out_fault_fd;
}

/// <summary><c>struct iommu_hwpt_pgfault</c>: one I/O page fault record read from a fault queue fd (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_pgfault
{
    /// <summary><c>IOMMU_PGFAULT_FLAGS_*</c>.</summary>
    public uint flags;

    /// <summary>Device that faulted.</summary>
    public uint dev_id;

    /// <summary>PASID, if <c>IOMMU_PGFAULT_FLAGS_PASID_VALID</c>.</summary>
    public uint pasid;

    /// <summary>Page request group index.</summary>
    public uint grpid;

    /// <summary><c>IOMMU_PGFAULT_PERM_*</c> requested.</summary>
    public uint perm;

    /// <summary>Reserved.</summary>
    public uint __reserved;

    /// <summary>Faulting address.</summary>
    public ulong addr;

    /// <summary>Length of the faulting range (a hint).</summary>
    public uint length;

    /// <summary>Cookie to echo in the response.</summary>
    public uint cookie;
}

/// <summary><c>struct iommu_hwpt_page_response</c>: the response to a fault group, written to a fault queue fd (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct iommu_hwpt_page_response
{
    /// <summary>The cookie of the last fault of the group.</summary>
    public uint cookie;

    /// <summary><c>IOMMUFD_PAGE_RESP_*</c>.</summary>
    public uint code;
}

internal static partial class IommuUapi
{
    /// <summary><c>iommu_option.option_id</c>: locked-memory accounting mode (0 = per user, 1 = per process); iommufd-wide.</summary>
    public const uint IOMMU_OPTION_RLIMIT_MODE = 0;

    /// <summary><c>iommu_option.option_id</c>: allow large IOPTEs for an IOAS (1 = default).</summary>
    public const uint IOMMU_OPTION_HUGE_PAGES = 1;

    /// <summary><c>iommu_option.op</c>: set the option from <c>val64</c>.</summary>
    public const ushort IOMMU_OPTION_OP_SET = 0;

    /// <summary><c>iommu_option.op</c>: read the option into <c>val64</c>.</summary>
    public const ushort IOMMU_OPTION_OP_GET = 1;

    /// <summary><c>iommu_hwpt_pgfault.flags</c>: <c>pasid</c> is valid.</summary>
    public const uint IOMMU_PGFAULT_FLAGS_PASID_VALID = 1u << 0;

    /// <summary><c>iommu_hwpt_pgfault.flags</c>: the last fault of its group.</summary>
    public const uint IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1u << 1;

    /// <summary><c>iommu_hwpt_pgfault.perm</c>: read access requested.</summary>
    public const uint IOMMU_PGFAULT_PERM_READ = 1u << 0;

    /// <summary><c>iommu_hwpt_pgfault.perm</c>: write access requested.</summary>
    public const uint IOMMU_PGFAULT_PERM_WRITE = 1u << 1;

    /// <summary><c>iommu_hwpt_pgfault.perm</c>: execute requested (PASID prefix).</summary>
    public const uint IOMMU_PGFAULT_PERM_EXEC = 1u << 2;

    /// <summary><c>iommu_hwpt_pgfault.perm</c>: privileged mode requested (PASID prefix).</summary>
    public const uint IOMMU_PGFAULT_PERM_PRIV = 1u << 3;

    /// <summary><c>iommu_hwpt_page_response.code</c>: the fault was handled.</summary>
    public const uint IOMMUFD_PAGE_RESP_SUCCESS = 0;

    /// <summary><c>iommu_hwpt_page_response.code</c>: the fault could not be handled.</summary>
    public const uint IOMMUFD_PAGE_RESP_INVALID = 1;

    /// <summary><c>IOMMU_DESTROY</c> (iommufd; <c>struct iommu_destroy *</c>, in).</summary>
    public static readonly uint IOMMU_DESTROY = IoctlEncoding.Io(IOMMUFD_CMD_DESTROY);

    /// <summary><c>IOMMU_OPTION</c> (iommufd; <c>struct iommu_option *</c>, in/out).</summary>
    public static readonly uint IOMMU_OPTION = IoctlEncoding.Io(IOMMUFD_CMD_OPTION);

    /// <summary><c>IOMMU_FAULT_QUEUE_ALLOC</c> (iommufd; <c>struct iommu_fault_alloc *</c>, in/out).</summary>
    public static readonly uint IOMMU_FAULT_QUEUE_ALLOC = IoctlEncoding.Io(IOMMUFD_CMD_FAULT_QUEUE_ALLOC);
}
