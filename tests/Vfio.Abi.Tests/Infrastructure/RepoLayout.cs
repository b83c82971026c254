// SPDX-License-Identifier: MIT
namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>Finds the repository root (the directory holding <c>Vfio.slnx</c>) and the shared reference material beside it.</summary>
internal static class RepoLayout
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>The repository root, found by walking up from the test binaries (or the working directory) to <c>Vfio.slnx</c>.</summary>
    public static string Root => s_root.Value;

    /// <summary><c>../shared/reference</c> relative to the repository root.</summary>
    public static string SharedReference => Path.GetFullPath(Path.Combine(Root, "..", "shared", "reference"));

    /// <summary>The fetch script, as a path relative to the repository root (for messages).</summary>
    public const string FetchScript = "tests/Vfio.Abi.Tests/fetch-headers.sh";

    private static string FindRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Vfio.slnx")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException(
            $"Vfio.slnx was not found above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}; run the tests from the repository.");
    }
}
