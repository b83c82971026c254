// SPDX-License-Identifier: MIT
using System.Diagnostics;
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
    public void List_ShowsTheEdu_UsableByBothBackends(string target)
    {
        CliResult result = Run(target, "list");
        result.ExitCode.ShouldBe(0, result.ToString());
        string row = result.Out.Split('\n').Single(l => l.TrimStart().StartsWith(Edu + " ", StringComparison.Ordinal));
        row.Split(' ', StringSplitOptions.RemoveEmptyEntries).ShouldBe([Edu, "1234:11e8", "vfio-pci", "2", "yes", "/dev/vfio/devices/vfio0", "legacy,", "iommufd"]);
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
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(tool);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        if (target != "kernel")
        {
            start.ArgumentList.Add("--simulate");
        }
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"vfioctl {string.Join(' ', args)} did not finish within 5 minutes.");
        }
        return new CliResult(process.ExitCode, output.Result, error.Result);
    }
}
