// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

[Trait("Tier", "host")]
public sealed class ListCommandTests
{
    /// <summary>A machine of its own (the testbed's may grow): a usable edu, a group blocked by a NIC on its host
    /// driver, an unbound device, and a device on a host driver alone in its group.</summary>
    private static SimulatedKernel Machine() => new(new SimulatedTopology()
        .AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice())
        .AddPci("0000:00:05.0", iommuGroup: 5, new EduDevice())
        .AddPci("0000:00:05.1", iommuGroup: 5, model: null, driver: "e1000e")
        .AddPci("0000:00:06.0", iommuGroup: 6, new EduDevice(), driver: ""));

    [Fact]
    public void List_Table_ShowsEachDevice_AndNamesTheDeviceThatBlocksAGroup()
    {
        using SimulatedKernel kernel = Machine();
        CliResult result = CliRun.Run(kernel, ["list", "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        lines[0].ShouldStartWith("Kernel: simulator");
        CliRun.Row(lines, "0000:00:02.0").ShouldBe(["0000:00:02.0", "1234:11e8", "vfio-pci", "2", "yes", "/dev/vfio/devices/vfio0", "legacy,", "iommufd"]);
        CliRun.Row(lines, "0000:00:05.0").ShouldBe(["0000:00:05.0", "1234:11e8", "vfio-pci", "5", "no:", "0000:00:05.1", "(e1000e)", "/dev/vfio/devices/vfio1", "none"]);
        CliRun.Row(lines, "0000:00:05.1").ShouldBe(["0000:00:05.1", "-", "e1000e", "5", "no:", "0000:00:05.1", "(e1000e)", "-", "none"]);
        CliRun.Row(lines, "0000:00:06.0").ShouldBe(["0000:00:06.0", "1234:11e8", "(none)", "6", "yes", "-", "none"]);
        result.Out.ShouldContain("0000:00:05.0: not usable: IOMMU group 5 is not viable: 0000:00:05.1 is bound to e1000e");
        result.Out.ShouldContain("0000:00:06.0: not usable: bound to no driver (bind it to vfio-pci)");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void List_PlatformDeviceInANoIommuGroup_ShowsItsGroupNode_AndTheOptInItNeeds()
    {
        // The testbed's platform shape: microvm's virtio-mmio rng on vfio-platform, vfio's no-IOMMU mode.
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
            .AddPlatform("LNRO0005:00", 0, new VirtioRngDevice()));
        CliResult result = CliRun.Run(kernel, ["list", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement rng = result.Json.GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("name").GetString() == "LNRO0005:00");
        rng.GetProperty("bus").GetString().ShouldBe("platform");
        rng.GetProperty("driver").GetString().ShouldBe("vfio-platform");
        rng.GetProperty("groupNode").GetString().ShouldBe("/dev/vfio/noiommu-0");
        rng.GetProperty("backends").GetArrayLength().ShouldBe(0);   // not without the opt-in, which list names
        rng.GetProperty("notUsableBecause").EnumerateArray().Select(static r => r.GetString()).ShouldContain(
            "legacy: IOMMU group 0 of LNRO0005:00 is a no-IOMMU group and Vfio:AllowUnsafeNoIommu (vfioctl: --allow-unsafe-noiommu) is not set");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void List_Json_GivesViabilityBlockersNodesAndBackends()
    {
        using SimulatedKernel kernel = Machine();
        CliResult result = CliRun.Run(kernel, ["list", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Json.GetProperty("kernel").GetString().ShouldBe("simulator");
        JsonElement[] devices = [.. result.Json.GetProperty("devices").EnumerateArray()];
        devices.Length.ShouldBe(4);
        JsonElement edu = devices[0];
        edu.GetProperty("name").GetString().ShouldBe("0000:00:02.0");
        edu.GetProperty("vendorDevice").GetString().ShouldBe("1234:11e8");
        edu.GetProperty("iommuGroup").GetInt32().ShouldBe(2);
        edu.GetProperty("viable").GetBoolean().ShouldBeTrue();
        edu.GetProperty("groupNode").GetString().ShouldBe("/dev/vfio/2");
        edu.GetProperty("backends").EnumerateArray().Select(static b => b.GetString()).ShouldBe(["legacy", "iommufd"]);
        JsonElement blocked = devices[1];
        blocked.GetProperty("viable").GetBoolean().ShouldBeFalse();
        JsonElement blocker = blocked.GetProperty("blockers").EnumerateArray().ShouldHaveSingleItem();
        (blocker.GetProperty("name").GetString(), blocker.GetProperty("driver").GetString()).ShouldBe(("0000:00:05.1", "e1000e"));
        blocked.GetProperty("backends").GetArrayLength().ShouldBe(0);
        blocked.GetProperty("notUsableBecause")[0].GetString()!.ShouldContain("IOMMU group 5 is not viable");
    }

    /// <summary>The testbed's conventional PCI bridge: vfio-pci refuses a bridge, so the advice to bind it is gone; what
    /// the bridge means to VFIO is its group, shared with the devices behind it.</summary>
    [Fact]
    public void List_TestbedBridge_IsAPciBridgeVfioDoesNotAssign_NotAskedToBindToVfioPci()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["list", "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        CliRun.Row(lines, SimulatedMachines.Bridge).ShouldBe([SimulatedMachines.Bridge, "1b36:0001", "(none)", "5", "no:", "0000:01:02.0", "(virtio-pci)", "-", "none"]);
        CliRun.Row(lines, SimulatedMachines.VirtioRng).ShouldBe([SimulatedMachines.VirtioRng, "1af4:1005", "virtio-pci", "5", "no:", "0000:01:02.0", "(virtio-pci)", "-", "none"]);
        lines.ShouldContain("0000:00:05.0: not usable: a PCI bridge (class 0x060400), which VFIO does not assign; the viability of its IOMMU group 5 matters for the devices behind it");
        lines.ShouldContain("0000:01:01.0: not usable: IOMMU group 5 is not viable: 0000:01:02.0 is bound to virtio-pci");
        // Only the driverless second function of the edu behind the second root port is asked to be bound.
        lines.Where(static l => l.Contains("bind it to vfio-pci", StringComparison.OrdinalIgnoreCase)).ShouldBe(
            ["0000:03:00.1: not usable: bound to no driver (bind it to vfio-pci)"]);

        JsonElement[] devices = [.. CliRun.Run(kernel, ["list", "--simulate", "--json"]).Json.GetProperty("devices").EnumerateArray()];
        JsonElement bridge = devices.Single(static d => d.GetProperty("name").GetString() == SimulatedMachines.Bridge);
        (bridge.GetProperty("pciClass").GetString(), bridge.GetProperty("pciBridge").GetBoolean()).ShouldBe(("0x060400", true));
        bridge.GetProperty("notUsableBecause").EnumerateArray().ShouldHaveSingleItem().GetString()!.ShouldStartWith("a PCI bridge (class 0x060400)");
        devices.Where(static d => d.GetProperty("pciBridge").GetBoolean()).Select(static d => d.GetProperty("name").GetString()).ShouldBe([SimulatedMachines.Bridge, SimulatedMachines.RootPort, SimulatedMachines.RootPort2]);
        JsonElement edu = devices.Single(static d => d.GetProperty("name").GetString() == SimulatedMachines.Edu);
        edu.GetProperty("pciClass").GetString().ShouldBe("0x00ff00");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void List_NoIommuMachine_ShowsNoIommuGroups_UsableByNoBackendWithoutOptIn()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions { NoIommu = true }));
        CliResult result = CliRun.Run(kernel, ["list", "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        CliRun.Row(result.Out.Split('\n'), "0000:00:02.0").ShouldBe(["0000:00:02.0", "1234:11e8", "vfio-pci", "noiommu-0", "yes", "-", "none"]);
        result.Out.ShouldContain("no-IOMMU group and Vfio:AllowUnsafeNoIommu (vfioctl: --allow-unsafe-noiommu) is not set");
    }

    [Fact]
    public void List_EmptyMachine_SaysSo_AndPointsToDoctor()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { IommuFd = false, LegacyContainer = false });
        CliResult result = CliRun.Run(kernel, ["list"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldContain("No device is in an IOMMU group or bound to a VFIO driver. Run 'vfioctl doctor' to see why.");
    }
}
