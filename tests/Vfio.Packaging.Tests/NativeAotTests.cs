// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Shouldly;

namespace Vfio.Packaging.Tests;

/// <summary>
/// vfioctl published with NativeAOT as a user would (<c>dotnet publish -r linux-x64 -p:PublishAot=true</c>, into a
/// temporary folder): the publish must give no warning at all (trimming and AOT analysis of vfioctl and of every
/// product assembly it contains, each warning shown on its own), and the native binary runs the demo. Its size and
/// start-up time are written to the test output.
/// </summary>
[Trait("Tier", "host")]
public sealed partial class NativeAotTests
{
    [Fact]
    public void Vfioctl_PublishesWithNativeAot_WithoutAWarning_AndTheNativeBinaryRunsTheDemo()
    {
        DirectoryInfo output = Directory.CreateTempSubdirectory("vfioctl-aot-");
        try
        {
            (int publish, string log) = Repo.Run(output.FullName, TimeSpan.FromMinutes(15), Repo.Dotnet, "publish",
                Path.Combine(Repo.Root, "Vfio.Cli", "Vfio.Cli.csproj"), "-c", Repo.Configuration, "-r", "linux-x64",
                "-p:PublishAot=true", "-p:TrimmerSingleWarn=false", "-o", output.FullName, "-nologo", "-nodeReuse:false");
            publish.ShouldBe(0, log);
            Warning().Matches(log).Select(static m => m.Value).ShouldBeEmpty(log);

            string vfioctl = Path.Combine(output.FullName, "vfioctl");
            File.Exists(vfioctl).ShouldBeTrue(log);
            File.Exists(Path.Combine(output.FullName, "vfioctl.dll")).ShouldBeFalse("a NativeAOT publish has no managed entry assembly");

            // On a machine without VFIO (the host tier's) the demo falls back to the simulator by itself.
            bool vfio = File.Exists("/dev/vfio/vfio") || File.Exists("/dev/iommu");
            string[] args = vfio ? ["demo", "--json", "--simulate"] : ["demo", "--json"];
            long start = Stopwatch.GetTimestamp();
            (int exitCode, string demo) = Repo.Run(output.FullName, TimeSpan.FromMinutes(1), vfioctl, args);
            TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
            exitCode.ShouldBe(0, demo);
            JsonElement root = JsonDocument.Parse(demo[demo.IndexOf('{', StringComparison.Ordinal)..demo.LastIndexOf('}')].Trim() + "}").RootElement;
            (root.GetProperty("ok").GetBoolean(), root.GetProperty("result").GetProperty("kernel").GetString()).ShouldBe((true, "simulator"));
            root.GetProperty("result").GetProperty("steps").GetArrayLength().ShouldBe(9);

            (int version, string versionOutput) = Repo.Run(output.FullName, TimeSpan.FromMinutes(1), vfioctl, "--version");
            version.ShouldBe(0, versionOutput);
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"NativeAOT vfioctl: {new FileInfo(vfioctl).Length / 1024.0 / 1024.0:0.0} MiB, demo in {elapsed.TotalSeconds:0.00} s (process start to exit)");
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    /// <summary>An MSBuild warning line (trim, AOT or any other).</summary>
    [GeneratedRegex(@"^.*: warning [A-Z]+\d+.*$", RegexOptions.Multiline)]
    private static partial Regex Warning();
}
