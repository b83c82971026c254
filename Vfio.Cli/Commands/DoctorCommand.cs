// SPDX-License-Identifier: MIT
using System.Globalization;
using Spectre.Console;
using Vfio.Core;

namespace Vfio.Cli.Commands;

/// <summary><c>vfioctl doctor</c>: the preflight of a machine for VFIO, each check ok, warn, fail or skip with its fix.
/// Everything is read through the kernel port (sysfs, /proc/self, opening the nodes), so the simulator's machine is
/// checked exactly like a real one.</summary>
internal static class DoctorCommand
{
    private const string Container = "/dev/vfio/vfio";
    private const string IommuFd = "/dev/iommu";
    private const string Type1Parameters = "/sys/module/vfio_iommu_type1/parameters/";
    private const int CapIpcLock = 14;
    private const ulong PageSize = 4096;

    internal const string Ok = "ok";
    internal const string Warn = "warn";
    internal const string Fail = "fail";
    internal const string Skip = "skip";

    /// <summary>The DMA a program will map: the memory it pins and the number of mappings it makes.</summary>
    internal readonly record struct MappingPlan(ulong Bytes, int Mappings);

    internal static int Run(CliEnvironment environment, MappingPlan plan, bool simulate, bool json)
    {
        using KernelSession session = KernelSession.Open(environment, simulate, fallBackWhenNoVfio: false);
        List<CheckReport> checks = Collect(session.Kernel, plan);
        var report = new DoctorReport(session.KernelName, checks, checks.Count(static c => c.Status == Fail), checks.Count(static c => c.Status == Warn));
        ErrorReport? error = report.Failed == 0 ? null : new ErrorReport(nameof(ExitCode.PreflightFailed), (int)ExitCode.PreflightFailed,
            string.Create(CultureInfo.InvariantCulture, $"{report.Failed} check(s) failed: {string.Join(", ", checks.Where(static c => c.Status == Fail).Select(static c => c.Name))}."),
            "Apply each failed check's fix (docs/troubleshooting.md explains every check).");
        if (json)
        {
            JsonContract.Write(environment, "doctor", report, error, static c => c.JsonEnvelopeDoctor);
        }
        else
        {
            IAnsiConsole console = environment.CreateConsole();
            Output.KernelLine(console, session);
            foreach (CheckReport check in checks)
            {
                console.Write(Output.Status(check.Status, $"[{check.Status}]"));
                console.WriteLine($"{new string(' ', 5 - check.Status.Length)}{check.Name}: {check.Detail}");
                if (check.Fix is not null)
                {
                    console.WriteLine($"        fix: {check.Fix}");
                }
            }
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{checks.Count} checks: {report.Failed} failed, {report.Warnings} warning(s) (mapping plan: {Output.Size(plan.Bytes)} in {plan.Mappings} mapping(s))."));
        }
        return report.Failed > 0 ? (int)ExitCode.PreflightFailed : 0;
    }

    internal static List<CheckReport> Collect(IKernel kernel, MappingPlan plan)
    {
        var checks = new List<CheckReport>();
        bool container = kernel.Exists(Container);
        bool iommuFd = kernel.Exists(IommuFd);
        checks.Add(container
            ? new("vfio container", Ok, Container + " exists (legacy backend)", null)
            : new("vfio container", iommuFd ? Warn : Fail, Container + " is missing: the legacy backend cannot work",
                "Load vfio and vfio-pci (modprobe vfio-pci) on a kernel with CONFIG_VFIO_CONTAINER=y; or use the iommufd backend."));
        checks.Add(iommuFd
            ? new("iommufd", Ok, IommuFd + " exists (iommufd backend)", null)
            : new("iommufd", container ? Warn : Fail, IommuFd + " is missing: the iommufd backend cannot work",
                "Load iommufd (modprobe iommufd) on a kernel with CONFIG_IOMMUFD=y; or use the legacy backend."));

        bool noIommuMode = ReadParameter(kernel, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode") == "Y";
        string[] iommus = List(kernel, "/sys/class/iommu");
        int groups = List(kernel, "/sys/kernel/iommu_groups")
            .Count(g => !(kernel.ReadText($"/sys/kernel/iommu_groups/{g}/name", out string name) == 0 && name == "vfio-noiommu"));
        bool hasIommu = iommus.Length > 0 || groups > 0;
        checks.Add(hasIommu
            ? new("IOMMU", Ok, iommus.Length > 0 ? $"enabled: {string.Join(", ", iommus)}, {groups} IOMMU group(s)" : $"enabled: {groups} IOMMU group(s)", null)
            : new("IOMMU", noIommuMode ? Warn : Fail,
                noIommuMode ? "no IOMMU is enabled; only no-IOMMU mode can give devices to user space, with no DMA protection" : "no IOMMU is enabled (no /sys/class/iommu entry, no IOMMU group)",
                "Enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on); only on a machine without any IOMMU: vfio.enable_unsafe_noiommu_mode=1."));
        checks.Add(NoIommuMode(kernel, noIommuMode, hasIommu));
        checks.Add(InterruptRemapping(kernel, iommus, hasIommu));

        IReadOnlyList<VfioDeviceEntry> devices = VfioSysfs.ListDevices(kernel);
        List<VfioDeviceEntry> bound = [.. devices.Where(static d => d.IsBoundToVfio)];
        checks.Add(Devices(bound, devices));
        checks.Add(Cdevs(bound, iommuFd));
        checks.Add(Memlock(kernel, plan));
        checks.Add(DmaEntryLimit(kernel, plan, container));
        foreach (string node in Nodes(container, iommuFd, bound))
        {
            checks.Add(Access(kernel, node));
        }
        return checks;
    }

    private static CheckReport NoIommuMode(IKernel kernel, bool enabled, bool hasIommu)
    {
        if (!kernel.Exists("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"))
        {
            return new("no-IOMMU mode", Skip, "not available (vfio is not loaded, or the kernel lacks CONFIG_VFIO_NOIOMMU)", null);
        }
        if (!enabled)
        {
            return new("no-IOMMU mode", Ok, "off", null);
        }
        return new("no-IOMMU mode", Warn, "on: a device without an IOMMU group can be used with no DMA protection at all (the kernel is tainted when one is)",
            hasIommu ? "This machine has an IOMMU: turn it off (echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode, or drop vfio.enable_unsafe_noiommu_mode=1)." : null);
    }

    private static CheckReport InterruptRemapping(IKernel kernel, string[] iommus, bool hasIommu)
    {
        const string Name = "interrupt remapping";
        if (!hasIommu)
        {
            return new(Name, Skip, "no IOMMU", null);
        }
        var vtd = new List<(string Name, bool Remaps)>();
        foreach (string iommu in iommus)
        {
            if (kernel.ReadText($"/sys/class/iommu/{iommu}/intel-iommu/ecap", out string text) == 0
                && ulong.TryParse(text.Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong ecap))
            {
                vtd.Add((iommu, (ecap & 0x8) != 0));   // VT-d ECAP.IR, bit 3
            }
        }
        if (vtd.Count == 0)
        {
            return new(Name, Warn, $"cannot be read from sysfs for {(iommus.Length == 0 ? "this IOMMU" : string.Join(", ", iommus))} (only VT-d reports it)",
                "If attaching fails with EPERM at VFIO_SET_IOMMU or VFIO_DEVICE_BIND_IOMMUFD, enable interrupt remapping.");
        }
        string[] without = [.. vtd.Where(static v => !v.Remaps).Select(static v => v.Name)];
        if (without.Length == 0)
        {
            return new(Name, Ok, $"supported (VT-d ECAP.IR on {string.Join(", ", vtd.Select(static v => v.Name))})", null);
        }
        bool type1Unsafe = ReadParameter(kernel, Type1Parameters + "allow_unsafe_interrupts") == "Y";
        bool iommuFdUnsafe = ReadParameter(kernel, "/sys/module/iommufd/parameters/allow_unsafe_interrupts") == "Y";
        string what = $"{string.Join(", ", without)} does not remap interrupts";
        if (type1Unsafe && iommuFdUnsafe)
        {
            return new(Name, Warn, what + "; allowed by allow_unsafe_interrupts (a device can spoof MSIs)", null);
        }
        string allowed = type1Unsafe ? " (vfio_iommu_type1 allows unsafe interrupts, iommufd does not)" : iommuFdUnsafe ? " (iommufd allows unsafe interrupts, vfio_iommu_type1 does not)" : string.Empty;
        return new(Name, Fail, what + ": Type1's VFIO_SET_IOMMU and iommufd's VFIO_DEVICE_BIND_IOMMUFD fail with EPERM" + allowed,
            "Enable interrupt remapping (firmware, intremap=on, x2apic; QEMU: -device intel-iommu,intremap=on); or, accepting that a device can spoof MSIs: vfio_iommu_type1.allow_unsafe_interrupts=1 and iommufd.allow_unsafe_interrupts=1.");
    }

    private static CheckReport Devices(List<VfioDeviceEntry> bound, IReadOnlyList<VfioDeviceEntry> devices)
    {
        const string Name = "VFIO devices";
        const string BindCommands = "echo vfio-pci > /sys/bus/pci/devices/<address>/driver_override; echo <address> > /sys/bus/pci/devices/<address>/driver/unbind; echo <address> > /sys/bus/pci/drivers_probe.";
        const string BindFix = "Bind a device to vfio-pci: " + BindCommands;
        if (bound.Count == 0)
        {
            return new(Name, Fail, "no device is bound to a VFIO driver (vfio-pci, vfio-platform)", BindFix);
        }
        List<VfioDeviceEntry> blocked = [.. bound.Where(static d => d.IommuGroup is not null && !d.IsGroupViable)];
        string names = string.Join(", ", bound.Select(static d => d.Name));
        if (blocked.Count == 0)
        {
            return new(Name, Ok, $"{bound.Count} bound to a VFIO driver, every IOMMU group viable: {names}", null);
        }
        string why = string.Join("; ", blocked.Select(static d =>
            $"group {d.IommuGroup} of {d.Name}: {string.Join(", ", d.GroupBlockers.Select(static b => $"{b.Name} is bound to {b.Driver}"))}"));
        // A PCI bridge of those groups (a conventional one shares its group with the devices behind it) cannot go to
        // vfio-pci, which takes no bridge: say what it needs instead.
        HashSet<int?> blockedGroups = [.. blocked.Select(static d => d.IommuGroup)];
        string bridges = string.Concat(devices.Where(d => d.IsPciBridge && blockedGroups.Contains(d.IommuGroup)).Select(static d =>
            d.GroupBlockers.Any(b => b.Name == d.Name)
                ? $" PCI bridge {d.Name}: unbind it from {d.Driver}; do not bind it to vfio-pci, which takes no bridge."
                : $" PCI bridge {d.Name} needs nothing: VFIO does not assign bridges, and one on no driver keeps its group viable."));
        // A machine where some VFIO device can be attached works; the others are reported with the fix. Only a machine
        // where none can is a failure.
        return new(Name, blocked.Count == bound.Count ? Fail : Warn, $"{blocked.Count} of {bound.Count} in a group that is not viable ({why})",
            "Unbind the devices named from their host drivers, or bind them to vfio-pci (or pci-stub): "
            + BindCommands + bridges);
    }

    private static CheckReport Cdevs(List<VfioDeviceEntry> bound, bool iommuFd)
    {
        const string Name = "device cdevs";
        List<VfioDeviceEntry> iommuDevices = [.. bound.Where(static d => !d.IsNoIommuGroup)];
        if (iommuDevices.Count == 0)
        {
            return new(Name, Skip, "no VFIO device behind an IOMMU", null);
        }
        string[] missing = [.. iommuDevices.Where(static d => d.CdevPath is null).Select(static d => d.Name)];
        if (missing.Length == 0)
        {
            return new(Name, Ok, string.Join(", ", iommuDevices.Select(static d => $"{d.Name} {d.CdevPath}")), null);
        }
        return new(Name, iommuFd ? Fail : Warn, $"{string.Join(", ", missing)} {(missing.Length == 1 ? "has" : "have")} no /dev/vfio/devices/vfioN: the iommufd backend cannot attach {(missing.Length == 1 ? "it" : "them")}",
            "Use a kernel with CONFIG_VFIO_DEVICE_CDEV=y (6.6 or later), or the legacy backend.");
    }

    private static CheckReport Memlock(IKernel kernel, MappingPlan plan)
    {
        const string Name = "RLIMIT_MEMLOCK";
        ulong need = (plan.Bytes + PageSize - 1) / PageSize * PageSize;
        if (kernel.ReadText("/proc/self/limits", out string limits) < 0)
        {
            return new(Name, Warn, "cannot read /proc/self/limits", null);
        }
        string? line = limits.Split('\n').FirstOrDefault(static l => l.StartsWith("Max locked memory", StringComparison.Ordinal));
        string[] fields = line?["Max locked memory".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        if (fields.Length < 1)
        {
            return new(Name, Warn, "no \"Max locked memory\" line in /proc/self/limits", null);
        }
        if (fields[0] == "unlimited")
        {
            return new(Name, Ok, $"unlimited (the plan pins {Output.Size(need)})", null);
        }
        ulong limit = ulong.Parse(fields[0], CultureInfo.InvariantCulture);
        if (limit >= need)
        {
            return new(Name, Ok, $"{Output.Size(limit)}, enough for the plan's {Output.Size(need)}", null);
        }
        if (HasCapability(kernel, CapIpcLock))
        {
            return new(Name, Ok, $"{Output.Size(limit)} is below the plan's {Output.Size(need)}, but this process has CAP_IPC_LOCK, which Type1 and iommufd do not limit", null);
        }
        return new(Name, Fail, $"{Output.Size(limit)} is below the plan's {Output.Size(need)}: mapping fails with ENOMEM (Type1 charges the process, iommufd the user)",
            string.Create(CultureInfo.InvariantCulture, $"Raise the limit to at least {need / 1024} KiB: ulimit -l {need / 1024} (shell), LimitMEMLOCK={need} (systemd unit), a memlock line in /etc/security/limits.conf, or run with CAP_IPC_LOCK."));
    }

    private static CheckReport DmaEntryLimit(IKernel kernel, MappingPlan plan, bool container)
    {
        const string Name = "dma_entry_limit";
        string? text = ReadParameter(kernel, Type1Parameters + "dma_entry_limit");
        if (text is null)
        {
            return container
                ? new(Name, Skip, "vfio_iommu_type1 is not loaded (it loads with the first Type1 container); iommufd has no such limit", null)
                : new(Name, Skip, "no legacy container; iommufd has no such limit", null);
        }
        if (!uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint limit))
        {
            return new(Name, Warn, $"unreadable value '{text}'", null);
        }
        if (limit >= (uint)plan.Mappings)
        {
            return new(Name, Ok, string.Create(CultureInfo.InvariantCulture, $"{limit} Type1 mappings per container, enough for the plan's {plan.Mappings}"), null);
        }
        return new(Name, Fail, string.Create(CultureInfo.InvariantCulture, $"{limit} Type1 mappings per container, below the plan's {plan.Mappings}: VFIO_IOMMU_MAP_DMA fails with ENOSPC"),
            string.Create(CultureInfo.InvariantCulture, $"Raise it: echo {plan.Mappings} > {Type1Parameters}dma_entry_limit (or vfio_iommu_type1.dma_entry_limit={plan.Mappings} at boot); or coalesce mappings; or use iommufd."));
    }

    private static IEnumerable<string> Nodes(bool container, bool iommuFd, List<VfioDeviceEntry> bound)
    {
        if (container)
        {
            yield return Container;
        }
        if (iommuFd)
        {
            yield return IommuFd;
        }
        foreach (string node in bound.Select(static d => d.GroupNode).OfType<string>().Distinct(StringComparer.Ordinal))
        {
            yield return node;
        }
        foreach (string cdev in bound.Select(static d => d.CdevPath).OfType<string>())
        {
            yield return cdev;
        }
    }

    private static CheckReport Access(IKernel kernel, string node)
    {
        string name = "access " + node;
        int rc = kernel.Open(node, OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle handle);
        handle.Dispose();
        return (Errno)(-rc) switch
        {
            _ when rc >= 0 => new(name, Ok, "read/write", null),
            Errno.EACCES => new(name, Fail, "permission denied (EACCES)", ExitCodes.PermissionHint),
            Errno.EPERM => new(name, Fail, node.Contains("noiommu", StringComparison.Ordinal)
                ? "not permitted (EPERM): a no-IOMMU group needs CAP_SYS_RAWIO" : "not permitted (EPERM)",
                node.Contains("noiommu", StringComparison.Ordinal) ? "Run as root (CAP_SYS_RAWIO)." : ExitCodes.PermissionHint),
            Errno.EBUSY => new(name, Warn, "busy (EBUSY): another process has the group open", "Stop the process that holds it (fuser -v " + node + ")."),
            Errno errno => new(name, Warn, $"open failed: {errno}", null),
        };
    }

    private static bool HasCapability(IKernel kernel, int capability)
    {
        if (kernel.ReadText("/proc/self/status", out string status) < 0)
        {
            return false;
        }
        string? line = status.Split('\n').FirstOrDefault(static l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is not null
            && ulong.TryParse(line["CapEff:".Length..].Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong caps)
            && (caps & (1UL << capability)) != 0;
    }

    private static string? ReadParameter(IKernel kernel, string path) => kernel.ReadText(path, out string text) < 0 ? null : text.Trim();

    private static string[] List(IKernel kernel, string path) => kernel.ListDirectory(path, out string[] entries) < 0 ? [] : entries;
}
