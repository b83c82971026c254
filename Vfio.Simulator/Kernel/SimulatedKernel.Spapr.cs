// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    /// <summary>The process's sPAPR pre-registered memory (the kernel's <c>mm-&gt;context.iommu_group_mem_list</c>,
    /// mm_iommu_*): shared by every v2 container of the process.</summary>
    internal List<SpaprMemoryRegion> SpaprPreregistered { get; } = [];

    /// <summary>pseries' <c>failed_ddw_pdn_list</c>: the PEs (here: groups) whose 64-bit window creation failed; every
    /// later window creation on them is ENODEV until reboot (the kernel never clears the list).</summary>
    internal HashSet<SimGroup> SpaprFailedDdw { get; } = [];
}

/// <summary>One pre-registered region (<c>struct mm_iommu_table_group_mem_t</c>): pinned and charged to
/// RLIMIT_MEMLOCK once, used by the containers that registered it and by the TCEs that point into it.</summary>
internal sealed class SpaprMemoryRegion(ulong ua, ulong size)
{
    internal ulong Ua { get; } = ua;

    internal ulong Size { get; } = size;

    /// <summary>Containers that registered it (<c>used</c>).</summary>
    internal int Used { get; set; }

    /// <summary>TCEs pointing into it (<c>mapped</c>).</summary>
    internal long Mapped { get; set; }

    internal bool Contains(ulong ua, ulong length) => ua >= Ua && length <= Size && ua - Ua <= Size - length;
}
