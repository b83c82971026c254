// SPDX-License-Identifier: MIT
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Shouldly;

namespace Vfio.Packaging.Tests;

/// <summary>
/// What a package page and a debugger see, read from the .nupkg and .snupkg files: id, preview version, description,
/// tags, readme, license expression, repository (URL and commit), the dependencies (Microsoft.Extensions abstractions
/// and Options only, at the lowest version), a deterministic build, and SourceLink in the symbols.
/// </summary>
[Trait("Tier", "host")]
public sealed partial class PackageMetadataTests(PackageFeed feed)
{
    /// <summary>What a library may depend on: the abstractions and Options it uses, never an implementation the host
    /// owns (Logging, DependencyInjection, Configuration, Hosting).</summary>
    private static readonly string[] s_allowedExtensions =
    [
        "Microsoft.Extensions.Configuration.Abstractions", "Microsoft.Extensions.Configuration.Binder",
        "Microsoft.Extensions.DependencyInjection.Abstractions", "Microsoft.Extensions.Logging.Abstractions",
        "Microsoft.Extensions.Options", "Microsoft.Extensions.Options.ConfigurationExtensions",
    ];

    public static TheoryData<string> Libraries => [.. Repo.Libraries.Select(static l => l.Id)];

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Library_Package_ExplainsItself_AndDependsOnAbstractionsOnly(string id)
    {
        using ZipArchive package = ZipFile.OpenRead(feed.File(id));
        XElement metadata = Nuspec(package);
        string Value(string name) => metadata.Element(metadata.Name.Namespace + name)?.Value ?? "";

        Value("id").ShouldBe(id);
        Value("version").ShouldBe(Repo.PackageVersion);
        Value("version").ShouldMatch(@"^0\.\d+\.\d+-preview\.\d+$", "a preview until 1.0");
        Value("description").Length.ShouldBeGreaterThan(40);
        Value("tags").Split(' ').ShouldContain("vfio");
        Value("tags").Split(' ').ShouldContain("iommufd");
        XElement license = metadata.Element(metadata.Name.Namespace + "license").ShouldNotBeNull();
        (license.Attribute("type")?.Value, license.Value).ShouldBe(("expression", "MIT"));
        Value("projectUrl").ShouldStartWith("https://");
        XElement repository = metadata.Element(metadata.Name.Namespace + "repository").ShouldNotBeNull();
        (repository.Attribute("type")?.Value, repository.Attribute("url")?.Value).ShouldBe(("git", Value("projectUrl")));
        repository.Attribute("commit")?.Value.ShouldMatch("^[0-9a-f]{40}$");

        Value("readme").ShouldBe("README.md");
        string readme = Entry(package, "README.md");
        readme.ShouldStartWith("# " + id);
        readme.Length.ShouldBeGreaterThan(200);

        (string Id, string Version)[] dependencies = [.. metadata.Descendants(metadata.Name.Namespace + "dependency")
            .Select(static d => (d.Attribute("id")!.Value, d.Attribute("version")!.Value))];
        foreach ((string dependency, string version) in dependencies)
        {
            if (dependency.StartsWith("Vfio.", StringComparison.Ordinal))
            {
                version.ShouldBe(Repo.PackageVersion, dependency);
                continue;
            }
            s_allowedExtensions.ShouldContain(dependency, $"{id} depends on {dependency}");
            version.ShouldBe("10.0.0", $"{id}: {dependency} at the lowest version that works, so a host keeps its own");
        }
        if (id == "Vfio.Core")
        {
            dependencies.Select(static d => d.Id).ShouldContain("Microsoft.Extensions.Logging.Abstractions");
        }

        // The assembly and its XML documentation; built deterministically.
        byte[] assembly = Bytes(package, $"lib/net10.0/{id}.dll");
        Entry(package, $"lib/net10.0/{id}.xml").ShouldContain("<member name=");
        using (var pe = new PEReader(new MemoryStream(assembly)))
        {
            pe.ReadDebugDirectory().Select(static d => d.Type).ShouldContain(DebugDirectoryEntryType.Reproducible, $"{id} is not deterministic");
        }
        CheckSymbols(id, repository.Attribute("url")!.Value, repository.Attribute("commit")!.Value);
    }

    [Fact]
    public void Tool_Package_IsADotnetTool_WithItsReadme()
    {
        using ZipArchive package = ZipFile.OpenRead(feed.File("Vfio.Cli"));
        XElement metadata = Nuspec(package);
        metadata.Element(metadata.Name.Namespace + "version")!.Value.ShouldBe(Repo.PackageVersion);
        metadata.Descendants(metadata.Name.Namespace + "packageType").Select(static p => p.Attribute("name")!.Value).ShouldContain("DotnetTool");
        metadata.Element(metadata.Name.Namespace + "readme")!.Value.ShouldBe("README.md");
        Entry(package, "README.md").ShouldContain("vfioctl doctor");
        System.IO.File.Exists(feed.File("Vfio.Cli", "snupkg")).ShouldBeTrue();
    }

    /// <summary>The symbol package holds the portable PDB, whose SourceLink maps the repository to its URL at the commit;
    /// on CI (<c>CI=true</c>: ContinuousIntegrationBuild) the PDB names sources by the deterministic root <c>/_/</c>,
    /// so builds from two checkout paths are the same.</summary>
    private void CheckSymbols(string id, string repositoryUrl, string commit)
    {
        using ZipArchive symbols = ZipFile.OpenRead(feed.File(id, "snupkg"));
        byte[] pdb = Bytes(symbols, $"lib/net10.0/{id}.pdb");
        using MetadataReaderProvider provider = MetadataReaderProvider.FromPortablePdbStream(new MemoryStream(pdb));
        MetadataReader reader = provider.GetMetadataReader();
        var sourceLinkKind = new Guid("CC110556-A091-4D38-9FEC-25AB9A351A6A");
        string? sourceLink = reader.CustomDebugInformation.Select(reader.GetCustomDebugInformation)
            .Where(c => reader.GetGuid(c.Kind) == sourceLinkKind)
            .Select(c => Encoding.UTF8.GetString(reader.GetBlobBytes(c.Value))).SingleOrDefault();
        sourceLink.ShouldNotBeNull($"{id}.pdb has no SourceLink");
        string raw = Regex.Replace(repositoryUrl, "^https://github.com/", "https://raw.githubusercontent.com/");
        sourceLink.ShouldContain($"{raw}/{commit}/*");

        string[] documents = [.. reader.Documents.Select(d => reader.GetString(reader.GetDocument(d).Name))];
        documents.ShouldNotBeEmpty();
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            documents.ShouldAllBe(d => d.StartsWith("/_/", StringComparison.Ordinal));
        }
        else
        {
            documents.ShouldContain(d => d.StartsWith(Repo.Root, StringComparison.Ordinal));
        }
    }

    private static XElement Nuspec(ZipArchive package)
    {
        ZipArchiveEntry nuspec = package.Entries.Single(static e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using Stream stream = nuspec.Open();
        XElement root = XDocument.Load(stream).Root!;
        return root.Element(root.Name.Namespace + "metadata")!;
    }

    private static string Entry(ZipArchive package, string name) => Encoding.UTF8.GetString(Bytes(package, name));

    private static byte[] Bytes(ZipArchive package, string name)
    {
        ZipArchiveEntry entry = package.GetEntry(name).ShouldNotBeNull($"the package has no {name}");
        using Stream stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
