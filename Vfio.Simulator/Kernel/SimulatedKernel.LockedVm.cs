// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    private const int LockedVmPageShift = 12;

    /// <summary>The process's pinned pages charged against RLIMIT_MEMLOCK (the kernel's <c>mm->locked_vm</c>): shared by
    /// every container of the process, as the real counter is per mm. Changed only under the kernel lock.</summary>
    internal ulong LockedVmPages { get; private set; }

    /// <summary>Charges <paramref name="pages"/> pinned pages; false (nothing charged) when
    /// <c>locked + pages &gt; RLIMIT_MEMLOCK / PAGE_SIZE</c>, which the caller turns into <c>ENOMEM</c>.</summary>
    internal bool TryChargeLockedVm(ulong pages)
    {
        ulong limit = Topology.MemlockLimit >> LockedVmPageShift;
        if (pages > limit || LockedVmPages > limit - pages)
        {
            return false;
        }
        LockedVmPages += pages;
        return true;
    }

    /// <summary>Returns pages charged by <see cref="TryChargeLockedVm"/>.</summary>
    internal void UnchargeLockedVm(ulong pages) => LockedVmPages -= Math.Min(pages, LockedVmPages);
}
