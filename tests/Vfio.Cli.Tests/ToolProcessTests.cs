// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;

namespace Vfio.Cli.Tests;

/// <summary>
/// The built tool as a user runs it (<c>dotnet vfioctl.dll ...</c> in a child process), with one set of assertions
/// and two targets: in the testbed guest's pci shape (<c>VFIO_TESTBED_SHAPE=pci</c>) against the real Linux kernel
/// and the testbed's edu at 0000:00:02.0; anywhere else with <c>--simulate</c>, on the simulator's copy of that
/// machine. The theory row names the target. One class, so its cases never touch the real devices at once.
/// </summary>
public sealed class ToolProcessTests
{
    private const string Edu = "0000:00:02.0";

    public static TheoryData<string> Target => [Environment.GetEnvironmentVariable("VFIO_TESTBED_SHAPE") == "pci" ? "kernel" : "simulator"];

    [Theory]
    [MemberData(nameof(Target))]
    public void Demo_Iommufd_ExitsZero(string target) => Demo(target, "iommufd");

    [Theory]
    [MemberData(nameof(Target))]
    public void Demo_Legacy_ExitsZero(string target) => Demo(target, "legacy");

    [Theory]
    [MemberData(nameof(Target))]
    public void List_ShowsTheEdu_UsableByBothBackends_AndTheBridgeAsNotAssigned(string target)
    {
        CliResult result = Run(target, "list");
        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        CliRun.Row(lines, Edu).ShouldBe([Edu, "1234:11e8", "vfio-pci", "2", "yes", "/dev/vfio/devices/vfio0", "legacy,", "iommufd"]);
        // The pci-bridge at 00:05.0 and the virtio-rng-pci behind it, with QEMU's identities (the simulator copies them).
        CliRun.Row(lines, "0000:00:05.0").ShouldBe(["0000:00:05.0", "1b36:0001", "(none)", "5", "no:", "0000:01:02.0", "(virtio-pci)", "-", "none"]);
        CliRun.Row(lines, "0000:01:02.0").ShouldBe(["0000:01:02.0", "1af4:1005", "virtio-pci", "5", "no:", "0000:01:02.0", "(virtio-pci)", "-", "none"]);
        lines.ShouldContain("0000:00:05.0: not usable: a PCI bridge (class 0x060400), which VFIO does not assign; the viability of its IOMMU group 5 matters for the devices behind it");
    }


    [Theory]
    [MemberData(nameof(Target))]
    public void Info_BothBackends_GiveEdusRegionsIrqsAndContainer(string target)
    {
        foreach (string backend in (string[])["legacy", "iommufd"])
        {
            CliResult result = Run(target, "info", Edu, "--backend", backend, "--json");
            result.ExitCode.ShouldBe(0, result.ToString());
            JsonElement info = result.Json;
            info.GetProperty("iommuGroup").GetInt32().ShouldBe(2);
            JsonElement bar0 = info.GetProperty("regions")[0];
            (bar0.GetProperty("size").GetUInt64(), bar0.GetProperty("flags").GetArrayLength()).ShouldBe((1UL << 20, 3));
            info.GetProperty("irqs")[1].GetProperty("count").GetInt32().ShouldBe(1);   // MSI
            JsonElement container = info.GetProperty("container");
            container.GetProperty("backend").GetString().ShouldBe(backend);
            container.GetProperty("pageSizes")[0].GetUInt64().ShouldBe(4096UL);
            container.GetProperty("iovaRanges").GetArrayLength().ShouldBeGreaterThan(0);
            if (backend == "legacy")
            {
                container.GetProperty("iommuType").GetString().ShouldBe("Type1 v2");
                container.GetProperty("dmaMappingsAvailable").GetInt32().ShouldBeGreaterThan(0);
            }
            else
            {
                container.GetProperty("hardwareInfo").GetProperty("type").GetString().ShouldBe("intel-vtd");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Target))]
    public void Info_PciView_DecodesEdusBars_AndTheHotResetOfTheEduBehindTheRootPort(string target)
    {
        CliResult edu = Run(target, "info", Edu, "--backend", "iommufd", "--json");
        edu.ExitCode.ShouldBe(0, edu.ToString());
        JsonElement pci = edu.Json.GetProperty("pci");
        JsonElement bar0 = pci.GetProperty("bars")[0];
        (bar0.GetProperty("kind").GetString(), bar0.GetProperty("size").GetUInt64(), bar0.GetProperty("mappable").GetBoolean()).ShouldBe(("mem32", 1UL << 20, true));
        bar0.GetProperty("mapAreas")[0].GetProperty("size").GetUInt64().ShouldBe(1UL << 20);
        pci.GetProperty("bars")[1].GetProperty("kind").GetString().ShouldBe("unimplemented");
        JsonElement reset = pci.GetProperty("reset");
        reset.GetProperty("hotReset").GetBoolean().ShouldBeFalse();   // the root bus has no bus reset: ENODEV
        reset.GetProperty("hotResetUnavailable").GetString().ShouldNotBeNullOrWhiteSpace();

        foreach ((string backend, string proof, string key) in (ReadOnlySpan<(string, string, string)>)[("iommufd", "device-ids", "deviceId"), ("legacy", "group-fds", "iommuGroup")])
        {
            CliResult behindPort = Run(target, "info", "0000:02:00.0", "--backend", backend, "--json");
            behindPort.ExitCode.ShouldBe(0, behindPort.ToString());
            JsonElement view = behindPort.Json.GetProperty("pci");
            view.GetProperty("romSize").GetUInt64().ShouldBe(4096UL);   // the option ROM the testbed gives it
            JsonElement hot = view.GetProperty("reset");
            (hot.GetProperty("hotReset").GetBoolean(), hot.GetProperty("hotResetProof").GetString()).ShouldBe((true, proof));
            JsonElement affected = hot.GetProperty("hotResetDevices").EnumerateArray().ShouldHaveSingleItem();
            (affected.GetProperty("address").GetString(), affected.GetProperty("owned").GetBoolean()).ShouldBe(("0000:02:00.0", true));
            affected.GetProperty(key).ValueKind.ShouldBe(JsonValueKind.Number);
        }
    }

    [Theory]
    [MemberData(nameof(Target))]
    public void Info_TheBridge_IsUnusableAsAPciBridge_WithNoAdviceToBindIt(string target)
    {
        foreach (string backend in (string[])["legacy", "iommufd"])
        {
            CliResult result = Run(target, "info", "0000:00:05.0", "--backend", backend);
            result.ExitCode.ShouldBe(4, result.ToString());
            result.Error.ShouldContain("the device is a PCI bridge (class 0x060400), which VFIO does not assign");
            result.Error.ShouldNotContain("Bind it to vfio-pci");
        }
    }

    [Theory]
    [MemberData(nameof(Target))]
    public void Doctor_NoCheckFails(string target)
    {
        CliResult result = Run(target, "doctor");
        result.ExitCode.ShouldBe(0, result.ToString());
        result.Out.ShouldContain("[ok]   vfio container: /dev/vfio/vfio exists");
        result.Out.ShouldContain("[ok]   iommufd: /dev/iommu exists");
        result.Out.ShouldContain("[ok]   interrupt remapping: supported (VT-d ECAP.IR on dmar0)");
        result.Out.ShouldContain("[ok]   access /dev/vfio/2: read/write");
        result.Out.ShouldNotContain("[fail]");
    }

    private static void Demo(string target, string backend)
    {
        CliResult result = Run(target, "demo", "--device", Edu, "--backend", backend);
        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        if (target == "kernel")
        {
            lines[0].ShouldMatch(@"^ok   attach ");
        }
        else
        {
            lines[0].ShouldBe("Kernel: simulator (an in-process model of Linux 6.12 VFIO and iommufd with the testbed's devices), because --simulate was given.");
        }
        lines.ShouldContain(l => l.StartsWith("ok   attach", StringComparison.Ordinal) && l.Contains($"{Edu} through {backend} (", StringComparison.Ordinal));
        lines.ShouldContain(l => l.StartsWith("ok   DMA edu -> RAM + MSI", StringComparison.Ordinal) && l.Contains("1 MSI (status 0x100", StringComparison.Ordinal));
        lines.ShouldContain(l => l.StartsWith("ok   compare", StringComparison.Ordinal) && l.EndsWith("4096 bytes came back as sent", StringComparison.Ordinal));
        lines.ShouldContain(l => l.StartsWith($"Demo passed on {(target == "kernel" ? "Linux" : "the simulator")}: 9 steps in ", StringComparison.Ordinal));
        result.Out.ShouldNotContain("FAIL");
    }

    /// <summary>Runs the built vfioctl.dll (Vfio.Cli's output, same configuration as this assembly) with the dotnet
    /// host running the tests; adds <c>--simulate</c> off the testbed.</summary>
    private static CliResult Run(string target, params string[] args)
    {
        string tool = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory.Replace("/tests/Vfio.Cli.Tests/", "/Vfio.Cli/", StringComparison.Ordinal), "vfioctl.dll"));
        File.Exists(tool).ShouldBeTrue($"the built tool {tool} (build Vfio.Cli first)");
        return CliRun.Process(Environment.ProcessPath!, [tool, .. args, .. target == "kernel" ? [] : (string[])["--simulate"]], TimeSpan.FromMinutes(5));
    }
}
