// SPDX-License-Identifier: MIT
using System.Reflection;
using System.Text.Json;
using Shouldly;

namespace Vfio.Cli.Tests;

/// <summary>
/// vfioctl as a user installs it: <c>dotnet pack</c> of Vfio.Cli as built for these tests (no rebuild; the package
/// and the publish folder it stages go to a temporary folder, never into the repository), <c>dotnet tool install
/// --tool-path</c> from that folder alone (a NuGet config that clears every other source: the package must carry its
/// dependencies), then the installed command. Host only (<c>Tier=host</c>, which the guest tiers filter out): it needs
/// the SDK and the build tree, not the real kernel. About two seconds.
/// </summary>
[Trait("Tier", "host")]
public sealed class ToolPackageTests
{
    private static readonly string s_repoRoot = Metadata("RepoRoot");

    /// <summary>The repository these tests were built from.</summary>
    internal static string RepoRoot => s_repoRoot;
    private static readonly string s_configuration = Metadata("Configuration");

    [Fact]
    public void PackedTool_Installs_FromItsOwnPackageAlone_AndRunsVersionAndDemo()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("vfioctl-tool-");
        try
        {
            string packages = Path.Combine(temp.FullName, "packages");
            string tools = Path.Combine(temp.FullName, "tools");
            string config = Path.Combine(temp.FullName, "nuget.config");
            File.WriteAllText(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="vfioctl" value="{packages}" />
                  </packageSources>
                </configuration>
                """);

            CliResult pack = Run(temp.FullName, Dotnet, "pack", Path.Combine(s_repoRoot, "Vfio.Cli", "Vfio.Cli.csproj"), "-c", s_configuration, "--no-build",
                "-o", packages, "-nologo", "-nodeReuse:false", $"-p:PublishDir={Path.Combine(temp.FullName, "publish")}/",
                $"-p:NuspecOutputPath={Path.Combine(temp.FullName, "nuspec")}/");
            pack.ExitCode.ShouldBe(0, pack.ToString());
            Directory.GetFiles(packages, "*.nupkg").Select(Path.GetFileName).ShouldBe([$"Vfio.Cli.{PackageVersion}.nupkg"]);

            CliResult install = Run(temp.FullName, Dotnet, "tool", "install", "--tool-path", tools, "--configfile", config, "--prerelease", "Vfio.Cli");
            install.ExitCode.ShouldBe(0, install.ToString());
            install.Out.ShouldContain($"Tool 'vfio.cli' (version '{PackageVersion}') was successfully installed.");

            string vfioctl = Path.Combine(tools, "vfioctl");
            CliResult version = Run(temp.FullName, vfioctl, "--version");
            version.ExitCode.ShouldBe(0, version.ToString());
            version.Out.Trim().ShouldBe(typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion);

            // The demo as a user first runs it: on a machine without VFIO (the host tier's) it falls back to the simulator
            // and says why; elsewhere it is asked for the simulator, so the result does not depend on the machine's devices.
            bool vfio = File.Exists("/dev/vfio/vfio") || File.Exists("/dev/iommu");
            CliResult demo = vfio ? Run(temp.FullName, vfioctl, "demo", "--json", "--simulate") : Run(temp.FullName, vfioctl, "demo", "--json");
            demo.ExitCode.ShouldBe(0, demo.ToString());
            JsonElement report = demo.Json;
            (report.GetProperty("kernel").GetString(), demo.Root.GetProperty("ok").GetBoolean()).ShouldBe(("simulator", true));
            report.GetProperty("steps").GetArrayLength().ShouldBe(9);
            if (!vfio)
            {
                report.GetProperty("simulatorReason").GetString()!.ShouldStartWith("this machine has no VFIO device");
            }
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    /// <summary>The package version: the informational version less its source revision (0.2.0-preview.1).</summary>
    private static string PackageVersion => typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    /// <summary>The dotnet host running these tests when it is one, else the one on PATH.</summary>
    private static string Dotnet => Path.GetFileName(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    private static CliResult Run(string workingDirectory, string program, params string[] args)
    {
        CliResult result = CliRun.Process(program, args, TimeSpan.FromMinutes(2), start =>
        {
            start.WorkingDirectory = workingDirectory;
            start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            start.Environment["DOTNET_NOLOGO"] = "1";
            start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
            // A run started by dotnet test inherits MSBuild's own variables, which would point the child's build elsewhere.
            foreach (string name in start.Environment.Keys.Where(static k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                start.Environment.Remove(name);
            }
        });
        TestContext.Current.TestOutputHelper?.WriteLine($"$ {Path.GetFileName(program)} {string.Join(' ', args)}\n{result}");
        return result;
    }

    private static string Metadata(string key) => typeof(ToolPackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value ?? throw new InvalidOperationException($"No {key} metadata.");
}
