// SPDX-License-Identifier: MIT
using Shouldly;

[assembly: AssemblyFixture(typeof(Vfio.Packaging.Tests.PackageFeed))]

namespace Vfio.Packaging.Tests;

/// <summary>
/// A local NuGet feed in a temporary folder with every package of this build: the product projects packed as built
/// (<c>--no-build</c>, with their symbol packages), once for all tests. Removed afterwards.
/// </summary>
public sealed class PackageFeed : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("vfio-feed-");

    public PackageFeed()
    {
        Folder = Path.Combine(_root.FullName, "feed");
        foreach (string project in Repo.Libraries.Select(static l => l.Project).Append("Vfio.Cli/Vfio.Cli.csproj"))
        {
            (int exitCode, string output) = Repo.Run(_root.FullName, TimeSpan.FromMinutes(3), Repo.Dotnet, "pack", Path.Combine(Repo.Root, project),
                "-c", Repo.Configuration, "--no-build", "-o", Folder, "-nologo", "-nodeReuse:false",
                $"-p:PublishDir={Path.Combine(_root.FullName, "publish")}/", $"-p:NuspecOutputPath={Path.Combine(_root.FullName, "nuspec", Path.GetFileNameWithoutExtension(project))}/");
            exitCode.ShouldBe(0, output);
        }
    }

    /// <summary>The feed's folder: <c>*.nupkg</c> and <c>*.snupkg</c>.</summary>
    public string Folder { get; }

    /// <summary>The path of package <paramref name="id"/>'s <paramref name="extension"/> file of this build.</summary>
    public string File(string id, string extension = "nupkg") => Path.Combine(Folder, $"{id}.{Repo.PackageVersion}.{extension}");

    public void Dispose() => _root.Delete(recursive: true);
}
