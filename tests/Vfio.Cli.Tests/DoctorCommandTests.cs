// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

[Trait("Tier", "host")]
public sealed class DoctorCommandTests
{
    [Fact]
    public void Doctor_Testbed_NoCheckFails_TheNonViableGroupWarns_ExitZero()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldContain("[ok]   interrupt remapping: supported (VT-d ECAP.IR on dmar0)");
        result.Out.ShouldContain("[ok]   dma_entry_limit: 65535 Type1 mappings per container, enough for the plan's 1");
        result.Out.ShouldContain("[ok]   access /dev/vfio/devices/vfio0: read/write");
        // The testbed's bridge group (edu 01:01.0 with virtio-rng-pci on virtio-pci) cannot be attached; the others can.
        result.Out.ShouldContain("[warn] VFIO devices: 1 of 7 in a group that is not viable (group 5 of 0000:01:01.0: 0000:01:02.0 is bound to virtio-pci)");
        result.Out.ShouldContain("25 checks: 0 failed, 1 warning(s)");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Doctor_MemlockBelowThePlan_Fails_WithTheLimitToSet()
    {
        using var kernel = new SimulatedKernel(Testbed(t => t.MemlockLimit = 64 * 1024));
        Check check = Run(kernel, "RLIMIT_MEMLOCK", "--dma-size", "1M");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldBe("64 KiB is below the plan's 1 MiB: mapping fails with ENOMEM (Type1 charges the process, iommufd the user)");
        check.Fix!.ShouldContain("ulimit -l 1024");
        Run(kernel, "RLIMIT_MEMLOCK", "--dma-size", "64K").Status.ShouldBe("ok");
    }

    [Fact]
    public void Doctor_DmaEntryLimitBelowThePlan_Fails()
    {
        using var kernel = new SimulatedKernel(Testbed(t => t.DmaEntryLimit = 10));
        Check check = Run(kernel, "dma_entry_limit", "--dma-mappings", "100");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldContain("10 Type1 mappings per container, below the plan's 100");
        check.Fix!.ShouldContain("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit");
    }

    [Fact]
    public void Doctor_NoInterruptRemapping_Fails_NamingTheEpermAndTheParameters()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions { InterruptRemapping = false }));
        Check check = Run(kernel, "interrupt remapping");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldContain("dmar0 does not remap interrupts");
        check.Fix!.ShouldContain("vfio_iommu_type1.allow_unsafe_interrupts=1 and iommufd.allow_unsafe_interrupts=1");
    }

    [Fact]
    public void Doctor_NoIommuMachine_WarnsAboutTheUnprotectedMode_AndSkipsRemapping()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions { NoIommu = true }));
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate", "--json"]);
        Check iommu = Find(result, "IOMMU");
        iommu.Status.ShouldBe("warn");
        iommu.Detail.ShouldContain("only no-IOMMU mode");
        Find(result, "no-IOMMU mode").Status.ShouldBe("warn");
        Find(result, "interrupt remapping").Status.ShouldBe("skip");
        Find(result, "device cdevs").Status.ShouldBe("skip");
        Find(result, "access /dev/vfio/noiommu-0").Status.ShouldBe("ok");
    }

    [Fact]
    public void Doctor_UnprivilegedOnNoIommu_FailsTheGroupNode_WithCapSysRawio()
    {
        using var kernel = new SimulatedKernel(Testbed(t => t.Privileged = false, noIommu: true));
        Check check = Run(kernel, "access /dev/vfio/noiommu-0");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldContain("CAP_SYS_RAWIO");
    }

    [Fact]
    public void Doctor_NodesDenied_FailsEachNode_WithThePermissionFix()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        kernel.DenyDeviceNodes = true;
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate", "--json"]);
        result.ExitCode.ShouldBe(9);
        Check check = Find(result, "access /dev/iommu");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldBe("permission denied (EACCES)");
        check.Fix!.ShouldContain("udev rule");
        result.Json.GetProperty("failed").GetInt32().ShouldBe(16);   // vfio, iommu, groups 2-5, 7, 11, 12, cdevs vfio0-6
    }

    [Fact]
    public void Doctor_NoCdevsWithIommuFd_FailsTheCdevCheck()
    {
        using var kernel = new SimulatedKernel(Testbed(t => t.DeviceCdev = false));
        Check check = Run(kernel, "device cdevs");
        check.Status.ShouldBe("fail");
        check.Fix!.ShouldContain("CONFIG_VFIO_DEVICE_CDEV");
    }

    [Fact]
    public void Doctor_OnlyOneBackendsNode_Warns_NeitherFails()
    {
        using var kernel = new SimulatedKernel(Testbed(t => { t.IommuFd = false; t.DeviceCdev = false; }));
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate", "--json"]);
        result.ExitCode.ShouldBe(0, result.ToString());
        Find(result, "iommufd").Status.ShouldBe("warn");
        Find(result, "vfio container").Status.ShouldBe("ok");

        using var noContainer = new SimulatedKernel(Testbed(t => t.LegacyContainer = false));
        CliResult second = CliRun.Run(noContainer, ["doctor", "--simulate", "--json"]);
        Find(second, "vfio container").Status.ShouldBe("warn");
    }

    [Fact]
    public void Doctor_NonViableGroup_OfTheOnlyDevice_Fails_NamingTheDeviceAndItsDriver()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology()
            .AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice())
            .AddPci("0000:00:02.1", iommuGroup: 2, model: null, driver: "e1000e"));
        Check check = Run(kernel, "VFIO devices");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldBe("1 of 1 in a group that is not viable (group 2 of 0000:00:02.0: 0000:00:02.1 is bound to e1000e)");
    }

    /// <summary>The fix for a non-viable group names what to unbind or bind, and never sends the group's PCI bridge to
    /// vfio-pci (which refuses bridges): unbound it needs nothing; on a host driver that claims the group, unbind it.</summary>
    [Fact]
    public void Doctor_NonViableGroupWithABridge_TheFixNeverBindsTheBridgeToVfioPci()
    {
        using SimulatedKernel testbed = CliRun.Testbed();
        Check check = Run(testbed, "VFIO devices");
        check.Status.ShouldBe("warn");
        check.Fix.ShouldBe("Unbind the devices named from their host drivers, or bind them to vfio-pci (or pci-stub): "
            + "echo vfio-pci > /sys/bus/pci/devices/<address>/driver_override; echo <address> > /sys/bus/pci/devices/<address>/driver/unbind; "
            + "echo <address> > /sys/bus/pci/drivers_probe. "
            + "PCI bridge 0000:00:05.0 needs nothing: VFIO does not assign bridges, and one on no driver keeps its group viable.");

        using var onShpchp = new SimulatedKernel(new SimulatedTopology()
            .AddPci("0000:00:05.0", iommuGroup: 5, model: null, driver: "shpchp", identity: SimulatedPciIdentity.QemuPciBridge)
            .AddPci("0000:01:01.0", iommuGroup: 5, new EduDevice(), bridge: "0000:00:05.0"));
        check = Run(onShpchp, "VFIO devices");
        check.Status.ShouldBe("fail");
        check.Detail.ShouldBe("1 of 1 in a group that is not viable (group 5 of 0000:01:01.0: 0000:00:05.0 is bound to shpchp)");
        check.Fix!.ShouldEndWith(" PCI bridge 0000:00:05.0: unbind it from shpchp; do not bind it to vfio-pci, which takes no bridge.");
    }

    [Fact]
    public void Doctor_MachineWithoutVfio_FailsEveryNodeCheck_Exit9()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, IommuFd = false, LegacyContainer = false });
        CliResult result = CliRun.Run(kernel, ["doctor"]);
        result.ExitCode.ShouldBe(9, result.ToString());
        result.Out.ShouldContain("[fail] vfio container: /dev/vfio/vfio is missing");
        result.Out.ShouldContain("[fail] iommufd: /dev/iommu is missing");
        result.Out.ShouldContain("[fail] IOMMU: no IOMMU is enabled");
        result.Out.ShouldContain("[fail] VFIO devices: no device is bound to a VFIO driver");
        result.Out.ShouldContain("        fix: Bind a device to vfio-pci");
    }

    [Fact]
    public void Doctor_BadSize_IsAUsageError()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate", "--dma-size", "12X"]);
        result.ExitCode.ShouldBe(2);
        result.Error.ShouldContain("'12X' is not a size");
    }

    private sealed record Check(string Status, string Detail, string? Fix);

    private static SimulatedTopology Testbed(Action<SimulatedTopology> change, bool noIommu = false)
    {
        SimulatedTopology topology = SimulatedMachines.Testbed(new SimulatedTestbedOptions { NoIommu = noIommu });
        change(topology);
        return topology;
    }

    private static Check Run(SimulatedKernel kernel, string name, params string[] extra)
    {
        CliResult result = CliRun.Run(kernel, ["doctor", "--simulate", "--json", .. extra]);
        Check check = Find(result, name);
        result.ExitCode.ShouldBe(result.Json.GetProperty("failed").GetInt32() > 0 ? 9 : 0);
        return check;
    }

    private static Check Find(CliResult result, string name)
    {
        JsonElement check = result.Json.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        return new Check(check.GetProperty("status").GetString()!, check.GetProperty("detail").GetString()!, check.GetProperty("fix").GetString());
    }
}
