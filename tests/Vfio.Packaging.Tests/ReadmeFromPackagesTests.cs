// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using Shouldly;

namespace Vfio.Packaging.Tests;

/// <summary>
/// README.md's library code as a new user meets it: a console app created outside the repository (a temporary folder)
/// with the packages of this build from the local feed and nothing of the repository, the README's "attach, DMA,
/// interrupts" block pasted into it under a host of a few lines (the DI registration of the README's other block,
/// with the simulator), built and run. The restore sees the local feed and the machine's own NuGet sources, with
/// a package folder of its own (so a package of an earlier build never stands in) that falls back to the machine's.
/// </summary>
[Trait("Tier", "host")]
public sealed partial class ReadmeFromPackagesTests(PackageFeed feed)
{
    private const string Block = "samples/HostedEdu/EduService.cs#attach, DMA, interrupts";

    [Fact]
    public void ReadmeLibraryCode_BuildsFromThePackagesAlone_AndRunsOnTheSimulator()
    {
        string code = ReadmeBlock(Block);
        DirectoryInfo app = Directory.CreateTempSubdirectory("vfio-readme-app-");
        try
        {
            app.FullName.ShouldNotStartWith(Repo.Root);
            string fallback = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            // No <clear/>: the machine's own sources (user and machine NuGet.Config) stay, so nothing but this build's
            // Vfio packages comes from elsewhere.
            File.WriteAllText(Path.Combine(app.FullName, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config>
                    <add key="globalPackagesFolder" value="{Path.Combine(app.FullName, "packages")}" />
                  </config>
                  <packageSources>
                    <add key="this-build" value="{feed.Folder}" />
                  </packageSources>
                  <fallbackPackageFolders>
                    <add key="machine" value="{fallback}" />
                  </fallbackPackageFolders>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app.FullName, "ReadmeApp.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Vfio.Core" Version="{Repo.PackageVersion}" />
                    <PackageReference Include="Vfio.Backends.IommuFd" Version="{Repo.PackageVersion}" />
                    <PackageReference Include="Vfio.Backends.Legacy" Version="{Repo.PackageVersion}" />
                    <PackageReference Include="Vfio.Simulator" Version="{Repo.PackageVersion}" />
                    <PackageReference Include="Microsoft.Extensions.DependencyInjection" Version="{Repo.HostExtensionsVersion}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app.FullName, "Program.cs"), $$"""
                using Microsoft.Extensions.DependencyInjection;
                using Vfio.Core;

                // The host: the README's registration, on the simulator's testbed machine.
                var services = new ServiceCollection();
                services.AddVfio(options => options.Backend = "iommufd").AddIommuFdBackend().AddLegacyBackend().UseSimulator();
                await using ServiceProvider provider = services.BuildServiceProvider();
                VfioManager vfio = provider.GetRequiredService<VfioManager>();
                string device = "0000:00:02.0";
                CancellationToken cancellationToken = CancellationToken.None;
                TimeSpan s_timeout = TimeSpan.FromSeconds(10);

                // README.md, {{Block}}:
                {{code}}

                Console.WriteLine($"README sample: DMA {(dmaIntact ? "intact" : "CORRUPTED")}, {interrupts} interrupt(s) through {edu.Backend.Name}");
                return dmaIntact && interrupts == 1 ? 0 : 1;
                """);

            (int build, string buildOutput) = Repo.Run(app.FullName, TimeSpan.FromMinutes(5), Repo.Dotnet, "build", "-c", "Release", "-nologo", "-nodeReuse:false");
            build.ShouldBe(0, buildOutput);
            Regex.IsMatch(buildOutput, @"[1-9]\d* Warning\(s\)").ShouldBeFalse(buildOutput);
            // Only this build's Vfio packages were restored, from the local feed.
            Directory.GetDirectories(Path.Combine(app.FullName, "packages")).Select(Path.GetFileName)
                .Where(static d => d!.StartsWith("vfio.", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
                .ShouldBe(["vfio.backends.iommufd", "vfio.backends.legacy", "vfio.core", "vfio.simulator"]);

            string dll = Path.Combine(app.FullName, "bin", "Release", "net10.0", "ReadmeApp.dll");
            (int run, string runOutput) = Repo.Run(app.FullName, TimeSpan.FromMinutes(1), Repo.Dotnet, dll);
            run.ShouldBe(0, runOutput);
            runOutput.ShouldContain("README sample: DMA intact, 1 interrupt(s) through iommufd");
        }
        finally
        {
            app.Delete(recursive: true);
        }
    }

    /// <summary>The C# block of README.md that follows <c>&lt;!-- snippet: name --&gt;</c>.</summary>
    private static string ReadmeBlock(string name)
    {
        string[] readme = File.ReadAllLines(Path.Combine(Repo.Root, "README.md"));
        int marker = Array.FindIndex(readme, l => l.Trim() == $"<!-- snippet: {name} -->");
        marker.ShouldBeGreaterThanOrEqualTo(0, $"README.md has no snippet {name}");
        int start = Array.FindIndex(readme, marker, static l => l.StartsWith("```csharp", StringComparison.Ordinal));
        int end = Array.FindIndex(readme, start + 1, static l => l.TrimEnd() == "```");
        return string.Join('\n', readme[(start + 1)..end]);
    }
}
