// SPDX-License-Identifier: MIT
using System.Text.Json;
using System.Text.RegularExpressions;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary>vfioctl's human output: colour only on a terminal without NO_COLOR, tables that never break an address at
/// 80 columns, fixes that point a machine without VFIO to doctor and --simulate, and Ctrl+C ending a run cleanly.</summary>
public sealed partial class CliOutputTests
{
    private const string Escape = "\e[";

    [Fact]
    public void Colour_OnATerminal_NoneWithNoColor_NoneWhenRedirected()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliRun.Run(kernel, ["doctor", "--simulate"], terminal: true).Out.ShouldContain(Escape);
        CliRun.Run(kernel, ["list", "--simulate"], terminal: true, width: 200).Out.ShouldContain(Escape);
        CliRun.Run(kernel, ["doctor", "--simulate"], terminal: true, noColor: true).Out.ShouldNotContain(Escape);
        CliRun.Run(kernel, ["doctor", "--simulate"], terminal: false).Out.ShouldNotContain(Escape);

        CliResult failure = CliRun.Run(kernel, ["info", "0000:00:1f.0", "--simulate"], terminal: true);
        failure.Error.ShouldContain(Escape + "1;31merror:");
        CliRun.Run(kernel, ["info", "0000:00:1f.0", "--simulate"], terminal: true, noColor: true).Error.ShouldNotContain(Escape);
        CliRun.Run(kernel, ["info", "0000:00:1f.0", "--simulate", "--json"], terminal: true).Out.ShouldNotContain(Escape);
    }

    [Theory]
    [InlineData("1", null, true)]
    [InlineData("", null, false)]
    [InlineData(null, "xterm-256color", false)]
    [InlineData(null, "dumb", true)]
    public void NoColor_FollowsNoColorOrg(string? noColor, string? term, bool expected)
        => CliEnvironment.WantsNoColor(noColor, term).ShouldBe(expected);

    [Theory]
    [InlineData("list")]
    [InlineData("info")]
    public void At80Columns_NoLineIsWider_AndNoAddressIsBroken(string command)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        string[] args = command == "list" ? ["list", "--simulate"] : ["info", SimulatedMachines.Nvme, "--simulate", "--backend", "iommufd"];
        CliResult result = CliRun.Run(kernel, args, terminal: true, noColor: true, width: 80);

        result.ExitCode.ShouldBe(0, result.ToString());
        string[] lines = result.Out.Split('\n');
        lines.ShouldAllBe(l => l.TrimEnd().Length <= 80, result.Out);
        // Every address the JSON names appears whole in the text: no cell wrapped inside one.
        JsonElement json = CliRun.Run(kernel, [.. args, "--json"]).Json;
        string[] addresses = [.. PciAddress().Matches(json.ToString()).Select(static m => m.Value).Distinct()];
        addresses.ShouldNotBeEmpty();
        foreach (string address in addresses)
        {
            result.Out.ShouldContain(address);
        }
        PciAddressFragment().Matches(result.Out).Select(static m => m.Value).ShouldBeSubsetOf(addresses);
    }

    [Fact]
    public void At200Columns_TheListIsOneTable()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["list", "--simulate"], terminal: true, noColor: true, width: 200);

        string[] lines = result.Out.Split('\n');
        lines.ShouldContain(l => l.Contains("DEVICE", StringComparison.Ordinal) && l.Contains("BACKENDS", StringComparison.Ordinal));
        lines.Count(l => l.TrimStart().StartsWith("0000:00:02.0 ", StringComparison.Ordinal)).ShouldBe(1);
    }

    [Fact]
    public void WithoutVfio_FailuresPointToDoctorAndSimulate_NotToTheLibrarysBackendRegistration()
    {
        using var machine = new SimulatedKernel(new SimulatedTopology { IommuFd = false, LegacyContainer = false }
            .AddPci("0000:00:02.0", iommuGroup: 2, model: null, driver: "e1000e"));
        using SimulatedKernel simulator = CliRun.Testbed();
        foreach (string[] args in (string[][])[["info", "0000:00:02.0", "--json"], ["info", "0000:00:1f.0", "--json"], ["info", "0000:00:02.0", "--backend", "iommufd", "--json"]])
        {
            CliResult result = CliRun.Run(simulator, args, machine);
            result.ExitCode.ShouldBeOneOf([3, 4, 6], result.ToString());
            string fix = result.JsonError.GetProperty("fix").GetString()!;
            fix.ShouldContain("vfioctl doctor");
            fix.ShouldContain("--simulate");
            result.Error.ShouldNotContain("register another backend");
        }
    }

    [Fact]
    public void CtrlC_BeforeTheDemo_Exits130_WithTheCancelledError()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--json"], cancellation: cancelled);

        result.ExitCode.ShouldBe(130, result.ToString());
        result.JsonError.GetProperty("kind").GetString().ShouldBe("Cancelled");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public void CtrlC_DuringTheDemo_StopsAtTheNextStepOrWait_ReleasesEverything_AndExits130()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        using var cancellation = new CancellationTokenSource();
        // Ctrl+C as soon as MSI is enabled: the DMA step's wait (or the step itself) sees it.
        using var output = new CancelOnWrite("enable MSI", cancellation);
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate"], cancellation: cancellation, output: output);

        result.ExitCode.ShouldBe(130, result.ToString());
        result.Out.ShouldContain("ok   enable MSI");
        result.Out.ShouldNotContain("Demo passed");
        result.Error.ShouldContain("Cancelled (Ctrl+C)");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    /// <summary>A StringWriter that cancels when a line containing <paramref name="text"/> is written.</summary>
    private sealed class CancelOnWrite(string text, CancellationTokenSource cancellation) : StringWriter
    {
        public override void Write(string? value)
        {
            base.Write(value);
            if (value is not null && value.Contains(text, StringComparison.Ordinal))
            {
                cancellation.Cancel();
            }
        }
    }

    [GeneratedRegex(@"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")]
    private static partial Regex PciAddress();

    /// <summary>The start of a PCI address: the domain and bus, as a cell broken after them would leave them.</summary>
    [GeneratedRegex(@"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|[0-9a-f]{4}:[0-9a-f]{2}(?=\s)|[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{0,2}(?=\s)")]
    private static partial Regex PciAddressFragment();
}
