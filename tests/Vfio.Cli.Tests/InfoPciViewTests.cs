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
