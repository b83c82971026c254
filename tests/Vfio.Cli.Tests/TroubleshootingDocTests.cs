// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary>docs/troubleshooting.md explains every check vfioctl doctor makes, under a heading named as the check, and
/// nothing doctor does not check.</summary>
public sealed partial class TroubleshootingDocTests
{
    [Fact]
    [Trait("Tier", "host")]
    public void EveryDoctorCheck_HasItsSection_AndEverySectionIsACheck()
    {
        string[] headings = [.. File.ReadLines(Path.Combine(ToolPackageTests.RepoRoot, "docs", "troubleshooting.md"))
            .Select(static l => CheckHeading().Match(l)).Where(static m => m.Success).Select(static m => m.Groups["name"].Value.Replace("&lt;", "<").Replace("&gt;", ">"))];

        var checks = new HashSet<string>();
        // The testbed and a machine with nothing: between them every check runs.
        using (SimulatedKernel testbed = CliRun.Testbed())
        using (var bare = new SimulatedKernel(new SimulatedTopology { IommuFd = false, LegacyContainer = false }))
        {
            foreach (SimulatedKernel kernel in (SimulatedKernel[])[testbed, bare])
            {
                foreach (CheckReport check in Commands.DoctorCommand.Collect(kernel, new Commands.DoctorCommand.MappingPlan(8192, 1)))
                {
                    checks.Add(check.Name.StartsWith("access ", StringComparison.Ordinal) ? "access <node>" : check.Name);
                }
            }
        }
        headings.ShouldBe(checks, ignoreOrder: true);
    }

    [GeneratedRegex(@"^### (?<name>.+)$")]
    private static partial Regex CheckHeading();
}
