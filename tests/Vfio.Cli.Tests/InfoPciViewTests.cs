// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary><c>vfioctl info</c>'s PCI view (the <c>pci</c> object and the PCI tables) on the simulated testbed.</summary>
[Trait("Tier", "host")]
public sealed class InfoPciViewTests
{
    [Fact]
    public void Info_Pci_Json_GivesCapabilitiesInterruptsAndReset()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Nvme, "--backend", "iommufd", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement pci = result.Json.GetProperty("pci");
        pci.GetProperty("vendorId").GetString().ShouldBe("1b36");
        pci.GetProperty("classCode").GetString().ShouldBe("010802");   // the NVMe controller
        pci.GetProperty("capabilities").EnumerateArray().Select(static c => c.GetProperty("name").GetString()).ShouldContain("MsiX");
        JsonElement interrupts = pci.GetProperty("interrupts");
        interrupts.GetProperty("intxPin").GetInt32().ShouldBe(1);
        interrupts.GetProperty("msiVectors").GetInt32().ShouldBe(0);
        interrupts.GetProperty("msixVectors").GetInt32().ShouldBe(65);
        interrupts.GetProperty("msixTableBar").GetInt32().ShouldBe(0);
        interrupts.GetProperty("msixTableOffset").GetUInt64().ShouldBe(0x2000UL);
        interrupts.GetProperty("msixPbaOffset").GetUInt64().ShouldBe(0x3000UL);
        interrupts.GetProperty("errNotification").GetBoolean().ShouldBeTrue();
        interrupts.GetProperty("reqNotification").GetBoolean().ShouldBeTrue();
        pci.GetProperty("reset").GetProperty("functionReset").GetBoolean().ShouldBeTrue();
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_Pci_Table_ShowsEdusInterruptsAndCapabilities()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Edu, "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldMatch(@"PCI\s+\[1234:11e8\] class 00ff00");
        result.Out.ShouldMatch(@"INTx\s+INTA");
        result.Out.ShouldMatch(@"MSI\s+1 vector\(s\), 64-bit");
        result.Out.ShouldMatch(@"MSI-X\s+none");
        result.Out.ShouldMatch(@"ERR / REQ\s+not offered / offered");
        result.Out.ShouldMatch(@"Msi\s+0x\w+\s+\d+");
    }

    [Fact]
    public void Info_Pci_Json_DecodesTheBars()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Nvme, "--backend", "legacy", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement[] bars = [.. result.Json.GetProperty("pci").GetProperty("bars").EnumerateArray()];
        bars.Select(static b => b.GetProperty("index").GetInt32()).ShouldBe([0, 1, 2, 3, 4, 5]);
        JsonElement bar0 = bars[0];
        bar0.GetProperty("kind").GetString().ShouldBe("mem64");
        bar0.GetProperty("prefetchable").GetBoolean().ShouldBeFalse();
        bar0.GetProperty("mappable").GetBoolean().ShouldBeTrue();
        bar0.GetProperty("msixLeftOut").GetBoolean().ShouldBeFalse();   // the kernel reports MSIX_MAPPABLE
        JsonElement area = bar0.GetProperty("mapAreas").EnumerateArray().ShouldHaveSingleItem();
        (area.GetProperty("offset").GetUInt64(), area.GetProperty("size").GetUInt64()).ShouldBe((0UL, bar0.GetProperty("size").GetUInt64()));
        (bars[1].GetProperty("kind").GetString(), bars[1].GetProperty("size").GetUInt64(), bars[1].GetProperty("mappable").GetBoolean()).ShouldBe(("upper-half", 0UL, false));
        bars[1].GetProperty("mapAreas").GetArrayLength().ShouldBe(0);
        bars[2].GetProperty("kind").GetString().ShouldBe("unimplemented");
        result.Json.GetProperty("pci").GetProperty("romSize").GetUInt64().ShouldBe(0UL);
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Theory]
    [InlineData("iommufd", "device-ids")]
    [InlineData("legacy", "group-fds")]
    public void Info_Pci_Json_ListsWhatAHotResetResets_WithTheProofThatCoversIt(string backend, string proof)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.EduBehindRootPort, "--backend", backend, "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement pci = result.Json.GetProperty("pci");
        JsonElement reset = pci.GetProperty("reset");
        reset.GetProperty("functionReset").GetBoolean().ShouldBeTrue();   // the "bus" method: alone behind its root port
        reset.GetProperty("hotReset").GetBoolean().ShouldBeTrue();
        reset.GetProperty("hotResetProof").GetString().ShouldBe(proof);
        reset.GetProperty("hotResetUnavailable").ValueKind.ShouldBe(JsonValueKind.Null);
        JsonElement device = reset.GetProperty("hotResetDevices").EnumerateArray().ShouldHaveSingleItem();
        device.GetProperty("address").GetString().ShouldBe(SimulatedMachines.EduBehindRootPort);
        device.GetProperty("owned").GetBoolean().ShouldBeTrue();
        device.GetProperty(proof == "device-ids" ? "deviceId" : "iommuGroup").ValueKind.ShouldBe(JsonValueKind.Number);
        device.GetProperty(proof == "device-ids" ? "iommuGroup" : "deviceId").ValueKind.ShouldBe(JsonValueKind.Null);
        pci.GetProperty("romSize").GetUInt64().ShouldBeGreaterThan(0UL);   // the testbed's option ROM
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_Pci_Table_ShowsTheBars_AndWhyThereIsNoHotResetOnTheRootBus()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Edu, "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldMatch(@"
\s*0\s+mem32\s+1 MiB\s+0x0\+0x100000");
        result.Out.ShouldMatch(@"
\s*1\s+unimplemented\s+-\s+-");
        result.Out.ShouldMatch(@"hot reset\s+no: ");
        result.Out.ShouldMatch(@"ROM\s+none");
        result.Out.ShouldNotContain("HOT RESET RESETS");

        CliResult behindPort = CliRun.Run(kernel, ["info", SimulatedMachines.EduBehindRootPort, "--backend", "legacy", "--simulate"]);
        behindPort.ExitCode.ShouldBe(0, behindPort.ToString());
        behindPort.Out.ShouldMatch(@"hot reset\s+affects 1 device\(s\), proof by group-fds");
        behindPort.Out.ShouldMatch(@"HOT RESET RESETS\s+GROUP / DEVID\s+OWNED");
        behindPort.Out.ShouldMatch(SimulatedMachines.EduBehindRootPort.Replace(".", @"\.", StringComparison.Ordinal) + @"\s+group \d+\s+yes");
    }

    [Fact]
    public void Info_PlatformDevice_HasNoPciView()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
            .AddPlatform("LNRO0005:00", 0, new VirtioRngDevice()));
        CliResult result = CliRun.Run(kernel, ["info", "LNRO0005:00", "--allow-unsafe-noiommu", "--simulate", "--json"]);
        result.ExitCode.ShouldBe(0, result.ToString());
        result.Json.GetProperty("pci").ValueKind.ShouldBe(JsonValueKind.Null);
        CliResult table = CliRun.Run(kernel, ["info", "LNRO0005:00", "--allow-unsafe-noiommu", "--simulate"]);
        table.Out.ShouldNotContain("MSI-X");
    }
}
