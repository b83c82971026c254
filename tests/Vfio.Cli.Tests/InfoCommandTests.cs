// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

[Trait("Tier", "host")]
public sealed class InfoCommandTests
{
    [Fact]
    public void Info_Legacy_Json_GivesRegionsIrqsAndTheContainersFacts_IncludingDmaAvail()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Edu, "--backend", "legacy", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement info = result.Json;
        info.GetProperty("device").GetString().ShouldBe("0000:00:02.0");
        info.GetProperty("iommuGroup").GetInt32().ShouldBe(2);
        info.GetProperty("flags").EnumerateArray().Select(static f => f.GetString()).ShouldContain("Pci");
        JsonElement bar0 = info.GetProperty("regions")[0];
        (bar0.GetProperty("name").GetString(), bar0.GetProperty("size").GetUInt64(), bar0.GetProperty("present").GetBoolean()).ShouldBe(("BAR0", 1UL << 20, true));
        bar0.GetProperty("flags").EnumerateArray().Select(static f => f.GetString()).ShouldBe(["Read", "Write", "Mmap"]);
        info.GetProperty("regions")[7].GetProperty("offset").GetUInt64().ShouldBe(7UL << 40);
        info.GetProperty("regions")[8].GetProperty("present").GetBoolean().ShouldBeFalse();   // no VGA: EINVAL
        JsonElement msi = info.GetProperty("irqs")[1];
        (msi.GetProperty("name").GetString(), msi.GetProperty("count").GetInt32()).ShouldBe(("MSI", 1));
        JsonElement container = info.GetProperty("container");
        container.GetProperty("backend").GetString().ShouldBe("legacy");
        container.GetProperty("iommuType").GetString().ShouldBe("Type1 v2");
        container.GetProperty("pageSizes").EnumerateArray().Select(static p => p.GetUInt64()).ShouldBe([4096UL, 2UL << 20, 1UL << 30]);
        container.GetProperty("iovaRanges")[0].GetProperty("start").GetUInt64().ShouldBe(0UL);
        container.GetProperty("dmaMappingsAvailable").GetInt32().ShouldBe(65535);
        container.GetProperty("hardwareInfo").ValueKind.ShouldBe(JsonValueKind.Null);
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    /// <summary>The testbed's PCI bridge through either backend: unusable (exit 4) because it is a bridge, with no advice
    /// to bind it to vfio-pci, which refuses bridges.</summary>
    [Theory]
    [InlineData("legacy")]
    [InlineData("iommufd")]
    public void Info_PciBridge_IsUnusableAsABridge_NotSentToVfioPci(string backend)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Bridge, "--backend", backend, "--simulate", "--json"]);

        result.ExitCode.ShouldBe(4, result.ToString());
        JsonElement error = result.JsonError;
        error.GetProperty("message").GetString()!.ShouldContain(
            "the device is a PCI bridge (class 0x060400), which VFIO does not assign: vfio-pci takes only devices with a normal (type 0) configuration header");
        error.GetProperty("fix").GetString()!.ShouldStartWith("Attach a device behind the bridge instead.");
        result.Error.ShouldNotContain("Bind it to vfio-pci");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_PlatformDeviceWithoutIommu_NeedsTheOptIn_ThenGivesItsRegionAndAutomaskedIrq()
    {
        // The testbed's platform shape: microvm's virtio-mmio rng on vfio-platform in no-IOMMU mode.
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
            .AddPlatform("LNRO0005:00", 0, new VirtioRngDevice()));

        CliResult refused = CliRun.Run(kernel, ["info", "LNRO0005:00", "--backend", "legacy", "--simulate"]);
        refused.ExitCode.ShouldBe(4, refused.ToString());   // device unusable
        refused.Error.ShouldContain("no-IOMMU");
        refused.Error.ShouldContain("Vfio:AllowUnsafeNoIommu=true (vfioctl: --allow-unsafe-noiommu)");
        CliResult auto = CliRun.Run(kernel, ["info", "LNRO0005:00", "--simulate"]);
        // No backend can attach it (iommufd has no /dev/iommu, legacy needs the opt-in), so the available one (legacy)
        // attempts it and its error names the device's problem and the fix, as when legacy is chosen.
        auto.ExitCode.ShouldBe(4, auto.ToString());   // device unusable
        auto.Error.ShouldContain("Vfio:AllowUnsafeNoIommu=true (vfioctl: --allow-unsafe-noiommu)");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());

        CliResult result = CliRun.Run(kernel, ["info", "LNRO0005:00", "--allow-unsafe-noiommu", "--simulate", "--json"]);
        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement info = result.Json;
        info.GetProperty("flags").EnumerateArray().Select(static f => f.GetString()).ShouldContain("Platform");
        JsonElement region = info.GetProperty("regions")[0];
        (region.GetProperty("size").GetUInt64(), region.GetProperty("present").GetBoolean()).ShouldBe((0x200UL, true));
        JsonElement irq = info.GetProperty("irqs")[0];
        irq.GetProperty("count").GetInt32().ShouldBe(1);
        irq.GetProperty("flags").EnumerateArray().Select(static f => f.GetString()).ShouldContain("Automasked");
        info.GetProperty("container").GetProperty("iommuType").GetString().ShouldBe("no-IOMMU");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_IommuFd_Table_ShowsTheIoasAndTheIommuHardwareInfo()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Edu, "--backend", "iommufd", "--simulate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldContain("backend                  iommufd");
        result.Out.ShouldMatch(@"IOAS\s+IOAS \d+");
        result.Out.ShouldContain("IOMMU page sizes         4 KiB (mask 0x1000)");
        result.Out.ShouldContain("DMA mappings available   no limit (iommufd counts no entries)");
        result.Out.ShouldMatch(@"IOMMU hardware\s+intel-vtd, capabilities 0x\w+");
        result.Out.ShouldMatch(@"0 BAR0\s+1 MiB\s+0x0\s+Read, Write, Mmap");
        result.Out.ShouldMatch(@"1 MSI\s+1\s+EventFd, NoResize");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_SparseMmapRegion_ListsItsAreas_AndTheMsixMappableCapability()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci("0000:00:03.0", iommuGroup: 3, new MsixTestDevice(vectors: 8, sparseMmap: true)));
        CliResult result = CliRun.Run(kernel, ["info", "0000:00:03.0", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement bar0 = result.Json.GetProperty("regions")[0];
        bar0.GetProperty("sparseMmapAreas").GetArrayLength().ShouldBeGreaterThan(0);
        bar0.GetProperty("capabilities").EnumerateArray().Select(static c => c.GetString()).ShouldContain("sparse mmap v1");
        result.Json.GetProperty("irqs")[2].GetProperty("count").GetInt32().ShouldBe(8);

        CliResult table = CliRun.Run(kernel, ["info", "0000:00:03.0", "--simulate"]);
        table.Out.ShouldMatch(@"sparse mmap: 0x\w+\+0x\w+");
    }

    [Fact]
    public void Info_PowerMachine_ShowsTheSpaprLimitsWindowsAndEehState()
    {
        using SimulatedKernel kernel = CliRun.PowerTestbed();
        CliResult result = CliRun.Run(kernel, ["info", "0000:00:02.0", "--simulate", "--backend", "spapr-tce", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement container = result.Json.GetProperty("container");
        container.GetProperty("backend").GetString().ShouldBe("spapr-tce");
        container.GetProperty("iommuType").GetString().ShouldBe("sPAPR TCE v2");
        JsonElement spapr = container.GetProperty("spapr");
        spapr.GetProperty("version").GetString().ShouldBe("v2");
        spapr.GetProperty("dma32WindowSize").GetUInt64().ShouldBe(0x8000_0000UL);
        spapr.GetProperty("hostPageSizeMask").GetUInt64().ShouldBe(0x4021_1000UL);
        spapr.GetProperty("maxWindows").GetInt32().ShouldBe(2);
        spapr.GetProperty("maxLevels").GetInt32().ShouldBe(5);
        spapr.GetProperty("windows").GetArrayLength().ShouldBe(0);
        spapr.GetProperty("eehState").GetString().ShouldBe("Normal");

        CliResult table = CliRun.Run(kernel, ["info", "0000:00:02.0", "--simulate", "--backend", "spapr-tce"]);
        table.ExitCode.ShouldBe(0, table.ToString());
        table.Out.ShouldMatch(@"sPAPR TCE\s+v2: 32-bit window 0x0\+2 GiB, window page sizes 0x40211000, up to 2 windows of up to 5 levels");
        table.Out.ShouldMatch(@"DMA windows\s+none open");
        table.Out.ShouldMatch(@"EEH\s+Normal");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Info_PSeriesMachine_ShowsTheProbedLimits_AndThatTheHostOffersNoEeh()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new() { Spapr = true, SpaprPlatform = SimulatedSpaprPlatform.PSeries }));
        CliResult table = CliRun.Run(kernel, ["info", "0000:00:02.0", "--simulate", "--backend", "spapr-tce"]);

        table.ExitCode.ShouldBe(0, table.ToString());
        table.Out.ShouldMatch(@"sPAPR TCE\s+v2: 32-bit window 0x0\+1 GiB, window page sizes 0x1211000, up to 2 windows of up to 1 levels");
        table.Out.ShouldMatch(@"EEH\s+not offered by the host");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Theory]
    [InlineData(new[] { "info", "0000:00:09.0", "--simulate" }, 3, "There is no device 0000:00:09.0")]
    [InlineData(new[] { "info", "0000:00:02.0", "--simulate", "--backend", "spapr-tce" }, 6, "spapr-tce")]
    [InlineData(new[] { "info", "0000:00:02.0", "--simulate", "--backend", "vfio-user" }, 2, "vfio-user")]
    [InlineData(new[] { "info", "--simulate" }, 2, "Required argument missing")]
    public void Info_Failures_HaveTheirExitCode_AndAMessage(string[] args, int exitCode, string message)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, args);

        result.ExitCode.ShouldBe(exitCode, result.ToString());
        result.Error.ShouldContain(message);
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Info_Json_Failure_PrintsAnErrorObject_WithKindCodeAndFix()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions { Edu2Driver = "" }));
        CliResult result = CliRun.Run(kernel, ["info", SimulatedMachines.Edu2, "--simulate", "--json", "--backend", "legacy"]);

        result.ExitCode.ShouldBe(4, result.ToString());
        JsonElement error = result.JsonError;
        error.GetProperty("kind").GetString().ShouldBe("DeviceUnusable");
        error.GetProperty("exitCode").GetInt32().ShouldBe(4);
        error.GetProperty("message").GetString()!.ShouldContain("0000:00:04.0");
        error.GetProperty("fix").GetString()!.ShouldContain("vfio-pci");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }
}
