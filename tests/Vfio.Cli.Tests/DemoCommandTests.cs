// SPDX-License-Identifier: MIT
using System.Text.Json;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

[Trait("Tier", "host")]
public sealed class DemoCommandTests
{
    private static readonly string[] s_steps =
        ["attach", "identify", "map", "enable MSI", "DMA RAM -> edu + MSI", "DMA edu -> RAM + MSI", "compare", "unmap", "detach"];

    [Theory]
    [InlineData("legacy", "legacy")]
    [InlineData("iommufd", "iommufd")]
    [InlineData("auto", "iommufd")]
    public void Demo_Simulate_EachBackend_RunsEveryStep_ExitZero_AndLeavesNothingBehind(string backend, string used)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--backend", backend, "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement demo = result.Json;
        result.Root.GetProperty("ok").GetBoolean().ShouldBeTrue();
        demo.GetProperty("kernel").GetString().ShouldBe("simulator");
        demo.GetProperty("simulatorReason").GetString().ShouldBe("--simulate was given");
        demo.GetProperty("device").GetString().ShouldBe("0000:00:02.0");
        demo.GetProperty("backend").GetString().ShouldBe(used);
        JsonElement[] steps = [.. demo.GetProperty("steps").EnumerateArray()];
        steps.Select(static s => s.GetProperty("name").GetString()).ShouldBe(s_steps);
        steps.ShouldAllBe(s => s.GetProperty("ok").GetBoolean() && s.GetProperty("milliseconds").GetDouble() >= 0);
        steps[4].GetProperty("detail").GetString()!.ShouldContain("1 MSI (status 0x100, acknowledged)");
        steps[6].GetProperty("detail").GetString().ShouldBe("4096 bytes came back as sent");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
        kernel.DmaFaults.ShouldBeEmpty();
    }

    [Theory]
    [InlineData("spapr-tce", "spapr-tce")]
    [InlineData("auto", "spapr-tce")]
    [InlineData("legacy", "legacy")]
    public void Demo_Simulate_PowerMachine_RunsThroughTheTceTable_AndShowsTheWindow(string backend, string used)
    {
        using SimulatedKernel kernel = CliRun.PowerTestbed();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--backend", backend, "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement demo = result.Json;
        demo.GetProperty("backend").GetString().ShouldBe(used);
        JsonElement[] steps = [.. demo.GetProperty("steps").EnumerateArray()];
        steps.Select(static s => s.GetProperty("name").GetString()).ShouldBe(s_steps);
        string map = steps[2].GetProperty("detail").GetString()!;
        map.ShouldContain("sPAPR TCE v2 window 0x0+2 GiB (4 KiB TCEs, 2 levels, 1 mapping)");
        map.ShouldContain("8 KiB pre-registered");
        map.ShouldContain("EEH Normal");
        steps[6].GetProperty("detail").GetString().ShouldBe("4096 bytes came back as sent");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
        kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    public void Demo_MachineWithoutVfio_RunsOnTheSimulator_AndSaysWhy()
    {
        using var machine = new SimulatedKernel(new SimulatedTopology { IommuFd = false, LegacyContainer = false });
        using SimulatedKernel simulator = CliRun.Testbed();
        CliResult result = CliRun.Run(simulator, ["demo"], machine);

        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        lines[0].ShouldBe("Kernel: simulator (an in-process model of Linux 6.12 VFIO and iommufd with the testbed's devices), because this machine has no VFIO device (neither /dev/vfio/vfio nor /dev/iommu exists).");
        lines[1].ShouldMatch(@"^ok   attach\s+\d+\.\d{3} ms  0000:00:02.0 through iommufd \(IOAS \d+, IOMMU group 2\)$");
        lines.ShouldContain(l => l.StartsWith("ok   compare", StringComparison.Ordinal));
        lines.ShouldContain(l => l.StartsWith("Demo passed on the simulator: 9 steps in ", StringComparison.Ordinal));
        simulator.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Demo_MachineWithNoDeviceBoundToVfio_RunsOnTheSimulator()
    {
        using var machine = new SimulatedKernel(new SimulatedTopology().AddPci("0000:00:02.0", iommuGroup: 2, model: null, driver: "e1000e"));
        using SimulatedKernel simulator = CliRun.Testbed();
        CliResult result = CliRun.Run(simulator, ["demo", "--json"], machine);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Json.GetProperty("simulatorReason").GetString().ShouldBe("this machine has no VFIO device (no device is bound to vfio-pci or vfio-platform)");
    }

    [Fact]
    public void Demo_DeviceThatIsNotEdu_IsAMismatch_Exit7_AndDetachesCleanly()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--device", SimulatedMachines.Nvme]);

        result.ExitCode.ShouldBe(7, result.ToString());
        result.Out.ShouldMatch(@"FAIL identify\s+\d+\.\d{3} ms  Demo check failed: identification register is 0xf0107ff, not edu's 0x10000ed");
        result.Error.ShouldContain("vfioctl: error: Demo check failed");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Demo_UnboundDevice_IsUnusable_Exit4_WithTheFix()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed(new SimulatedTestbedOptions { Edu2Driver = "" }));
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--device", SimulatedMachines.Edu2, "--backend", "legacy", "--json"]);

        result.ExitCode.ShouldBe(4, result.ToString());
        result.Root.GetProperty("ok").GetBoolean().ShouldBeFalse();
        result.Json.GetProperty("steps")[0].GetProperty("name").GetString().ShouldBe("attach");
        result.JsonError.GetProperty("fix").GetString()!.ShouldContain("vfio-pci");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Demo_NodesDenied_IsPermissionDenied_Exit5()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        kernel.DenyDeviceNodes = true;
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--backend", "iommufd"]);

        result.ExitCode.ShouldBe(5, result.ToString());
        result.Error.ShouldContain("/dev/iommu");
    }

    [Fact]
    public void Demo_BackendMissingFromTheKernel_IsBackendUnavailable_Exit6()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { IommuFd = false, DeviceCdev = false }.AddPci("0000:00:02.0", 2, new EduDevice()));
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--backend", "iommufd"]);

        result.ExitCode.ShouldBe(6, result.ToString());
        result.Error.ShouldContain("/dev/iommu");
    }

    [Fact]
    public void Demo_MemlockTooSmall_IsAKernelError_Exit8_NamingTheLimit()
    {
        var topology = SimulatedMachines.Testbed();
        topology.MemlockLimit = 4096;
        using var kernel = new SimulatedKernel(topology);
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--backend", "legacy"]);

        result.ExitCode.ShouldBe(8, result.ToString());
        result.Out.ShouldMatch(@"FAIL map\s");
        result.Error.ShouldContain("RLIMIT_MEMLOCK");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void Demo_UnknownDevice_IsNotFound_Exit3()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--device", "0000:00:1f.0"]);
        result.ExitCode.ShouldBe(3, result.ToString());
        result.Error.ShouldContain("There is no device 0000:00:1f.0");
    }
}
