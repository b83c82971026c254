// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    private const int LockedVmPageShift = 12;

    /// <summary>The process's pinned pages charged against RLIMIT_MEMLOCK (the kernel's <c>mm->locked_vm</c>): shared by
    /// every container of the process, as the real counter is per mm. Changed only under the kernel lock.</summary>
    internal ulong LockedVmPages { get; private set; }

    /// <summary>The user's pinned pages (the kernel's <c>user_struct-&gt;locked_vm</c>), charged by iommufd in its default
    /// per-user accounting mode: a counter of its own, checked against the same RLIMIT_MEMLOCK. The model has one
    /// process of one user.</summary>
    internal ulong UserLockedVmPages { get; private set; }

    /// <summary>Charges <paramref name="pages"/> pinned pages; false (nothing charged) when
    /// <c>locked + pages &gt; RLIMIT_MEMLOCK / PAGE_SIZE</c>, which the caller turns into <c>ENOMEM</c>.</summary>
    /// <param name="pages">The pages to charge.</param>
    /// <param name="perUser">True to charge the user's counter (iommufd's IOPT_PAGES_ACCOUNT_USER) instead of the
    /// process's <c>mm-&gt;locked_vm</c> (Type1, sPAPR, iommufd's IOPT_PAGES_ACCOUNT_MM).</param>
    internal bool TryChargeLockedVm(ulong pages, bool perUser = false)
    {
        ulong limit = Topology.MemlockLimit >> LockedVmPageShift;
        ulong locked = perUser ? UserLockedVmPages : LockedVmPages;
        if (pages > limit || locked > limit - pages)
        {
            return false;
        }
        if (perUser)
        {
            UserLockedVmPages += pages;
        }
        else
        {
            LockedVmPages += pages;
        }
        return true;
    }

    /// <summary>Returns pages charged by <see cref="TryChargeLockedVm"/> to the same counter.</summary>
    internal void UnchargeLockedVm(ulong pages, bool perUser = false)
    {
        if (perUser)
        {
            UserLockedVmPages -= Math.Min(pages, UserLockedVmPages);
        }
        else
        {
            LockedVmPages -= Math.Min(pages, LockedVmPages);
        }
    }
}
