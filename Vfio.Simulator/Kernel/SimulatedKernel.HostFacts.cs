// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text;

namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    /// <summary>The process files the model serves itself (everything else under /proc goes to the real kernel): the
    /// limits and capabilities the model enforces are the topology's, not the test process's.</summary>
    private const string ProcLimits = "/proc/self/limits";
    private const string ProcStatus = "/proc/self/status";

    /// <summary>CAP_IPC_LOCK: the bit a process needs to pin memory beyond RLIMIT_MEMLOCK.</summary>
    private const int CapIpcLock = 14;

    /// <summary>CAP_LAST_CAP of Linux 6.12 (CAP_CHECKPOINT_RESTORE).</summary>
    private const int CapLastCap = 40;

    /// <summary>
    /// The host facts a preflight check reads, as Linux 6.12 shows them: the VFIO module parameters under
    /// <c>/sys/module/*/parameters</c> (<c>vfio.enable_unsafe_noiommu_mode</c>, <c>vfio_iommu_type1.dma_entry_limit</c>
    /// and <c>allow_unsafe_interrupts</c>, <c>iommufd.allow_unsafe_interrupts</c>), the IOMMU's class device
    /// (<c>/sys/class/iommu/dmar0</c> with VT-d's <c>intel-iommu/cap</c> and <c>ecap</c>, whose IR bit 3 says whether
    /// interrupts are remapped), and the process's <c>/proc/self/limits</c> (RLIMIT_MEMLOCK) and <c>/proc/self/status</c>
    /// (CapEff).
    /// </summary>
    private void AddHostFacts()
    {
        // drivers/vfio/vfio_main.c: module_param_named(enable_unsafe_noiommu_mode, ..., bool, S_IRUGO | S_IWUSR)
        _fs.AddText("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", Bool(Topology.UnsafeNoIommuMode));
        if (Topology.Iommu == SimulatedIommu.Type1)
        {
            // drivers/vfio/vfio_iommu_type1.c: allow_unsafe_interrupts (bool), dma_entry_limit (uint, "%u")
            _fs.AddText("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", Bool(Topology.AllowUnsafeInterrupts));
            _fs.AddText("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit",
                ((uint)Topology.DmaEntryLimit).ToString(CultureInfo.InvariantCulture));
            // drivers/iommu/intel/iommu.c: intel_iommu_groups "intel-iommu": cap_show/ecap_show print "%llx\n".
            // QEMU's intel-iommu sets ECAP.IR (bit 3) only with intremap=on.
            ulong ecap = Topology.InterruptRemapping ? SimulatedVtd.EcapReg | 0x8 : SimulatedVtd.EcapReg & ~0x8UL;
            const string Dmar = "/sys/devices/virtual/iommu/dmar0";
            _fs.AddText(Dmar + "/intel-iommu/cap", SimulatedVtd.CapReg.ToString("x", CultureInfo.InvariantCulture));
            _fs.AddText(Dmar + "/intel-iommu/ecap", ecap.ToString("x", CultureInfo.InvariantCulture));
            _fs.AddLink("/sys/class/iommu/dmar0", "../../devices/virtual/iommu/dmar0");
        }
        else
        {
            _fs.AddDirectory("/sys/class/iommu");
        }
        if (Topology.IommuFd && Topology.Iommu != SimulatedIommu.SpaprTce)
        {
            // drivers/iommu/iommufd/main.c: allow_unsafe_interrupts (bool); the model has no knob for it.
            _fs.AddText("/sys/module/iommufd/parameters/allow_unsafe_interrupts", Bool(false));
        }
        _fs.AddText(ProcLimits, ReadLimits);
        _fs.AddText(ProcStatus, ReadStatus);
    }

    private static bool IsSimulatedProcPath(string path) => path is ProcLimits or ProcStatus;

    private static string Bool(bool value) => value ? "Y\n" : "N\n";

    /// <summary>The real process's limits with the "Max locked memory" line replaced by the topology's RLIMIT_MEMLOCK
    /// (fs/proc/base.c proc_pid_limits: "%-25s %-20s %-20s %-10s\n", "unlimited" for RLIM_INFINITY).</summary>
    private string ReadLimits()
    {
        string limit = Topology.MemlockLimit == ulong.MaxValue ? "unlimited" : Topology.MemlockLimit.ToString(CultureInfo.InvariantCulture);
        string memlock = string.Create(CultureInfo.InvariantCulture, $"{"Max locked memory",-25} {limit,-20} {limit,-20} {"bytes",-10}");
        return ReplaceLine(_real.ReadText(ProcLimits, out string text) < 0 ? string.Empty : text, "Max locked memory", memlock);
    }

    /// <summary>The real process's status with CapEff replaced: the simulated process never has CAP_IPC_LOCK (the model
    /// always charges pinned pages against RLIMIT_MEMLOCK), and has every other capability when
    /// <see cref="SimulatedTopology.Privileged"/>, none otherwise (fs/proc/array.c render_cap_t: "CapEff:\t%016llx").</summary>
    private string ReadStatus()
    {
        ulong caps = Topology.Privileged ? ((1UL << (CapLastCap + 1)) - 1) & ~(1UL << CapIpcLock) : 0;
        string line = "CapEff:\t" + caps.ToString("x16", CultureInfo.InvariantCulture);
        return ReplaceLine(_real.ReadText(ProcStatus, out string text) < 0 ? string.Empty : text, "CapEff:", line);
    }

    private static string ReplaceLine(string text, string prefix, string line)
    {
        var result = new StringBuilder();
        bool replaced = false;
        foreach (string existing in text.Split('\n'))
        {
            if (existing.Length == 0)
            {
                continue;
            }
            bool match = existing.StartsWith(prefix, StringComparison.Ordinal);
            result.Append(match ? line : existing).Append('\n');
            replaced |= match;
        }
        if (!replaced)
        {
            result.Append(line).Append('\n');
        }
        return result.ToString();
    }
}
