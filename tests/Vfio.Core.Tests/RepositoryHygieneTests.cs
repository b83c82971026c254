// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using Shouldly;

namespace Vfio.Core.Tests;

/// <summary>
/// Rules of the code base that a compiler does not check: native calls only in the interop layer, and
/// <c>unsafe</c> only in the interop layer and the types that own mapped memory.
/// </summary>
public sealed partial class RepositoryHygieneTests
{
    // Product code may use `unsafe` in Interop/ folders, in the kernel port's declaration (its struct-pointer ioctl)
    // and in the types that own mapped memory.
    // Besides the interop layer: the port and mapping types, and the backend files that build uAPI structs whose
    // fields carry addresses of caller buffers (data_uptr, vaddr) for the ioctl they issue.
    private static readonly string[] s_unsafeAllowed =
        ["IKernel.cs", "MemoryMapping.cs", "MmioWindow.cs", "DmaBuffer.cs", "DmaMemorySpan.cs", "LegacyBackend.cs", "LegacyContainer.cs", "IommuFdBackend.cs", "IommuFdContainer.cs",
        "SpaprTceContainer.cs", "SpaprTceContainer.Windows.cs", "SpaprTceContainer.Eeh.cs"];

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Vfio.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"Vfio.slnx not found above {AppContext.BaseDirectory}.");
    }

    private static IEnumerable<string> ProductSources()
    {
        string root = RepositoryRoot();
        foreach (string project in Directory.GetDirectories(root))
        {
            string name = Path.GetFileName(project);
            if (name is "tests" or "bench" or "samples" or "docs" or "artifacts" || name.StartsWith('.'))
            {
                continue;
            }
            foreach (string file in Directory.EnumerateFiles(project, "*.cs", SearchOption.AllDirectories))
            {
                if (!file.Contains("/obj/", StringComparison.Ordinal) && !file.Contains("/bin/", StringComparison.Ordinal))
                {
                    yield return file;
                }
            }
        }
    }

    private static bool InInterop(string file) => file.Contains("/Interop/", StringComparison.Ordinal);

    [GeneratedRegex(@"\bunsafe\b")]
    private static partial Regex UnsafeKeyword();

    [GeneratedRegex(@"\[(LibraryImport|DllImport)\b")]
    private static partial Regex NativeImport();

    [Fact]
    public void ProductSources_Exist()
        => ProductSources().Count().ShouldBeGreaterThan(10);

    [Fact]
    public void NativeImports_OnlyInTheInteropLayer()
    {
        string[] offenders = [.. ProductSources().Where(f => !InInterop(f) && NativeImport().IsMatch(File.ReadAllText(f)))];
        offenders.ShouldBeEmpty();
    }

    [Fact]
    public void UnsafeCode_OnlyInInteropAndMappingTypes()
    {
        string[] offenders = [.. ProductSources().Where(f => !InInterop(f)
            && !s_unsafeAllowed.Contains(Path.GetFileName(f))
            && UnsafeKeyword().IsMatch(StripComments(File.ReadAllText(f))))];
        offenders.ShouldBeEmpty();
    }

    [Fact]
    public void ProductSources_CarryTheSpdxHeader()
    {
        string[] offenders = [.. ProductSources().Where(f => !File.ReadLines(f).First().StartsWith("// SPDX-License-Identifier: MIT", StringComparison.Ordinal))];
        offenders.ShouldBeEmpty();
    }

    private static string StripComments(string source) => CommentOrString().Replace(source, " ");

    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|""(?:[^""\\]|\\.)*""", RegexOptions.Singleline)]
    private static partial Regex CommentOrString();
}
