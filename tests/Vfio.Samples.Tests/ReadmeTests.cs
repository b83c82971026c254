// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using Shouldly;

namespace Vfio.Samples.Tests;

/// <summary>
/// README.md's C# cannot rot: every C# block in it is preceded by <c>&lt;!-- snippet: PATH#NAME --&gt;</c> and equals,
/// verbatim (less the region's indentation), the region <c>#region README: NAME</c> of the compiled (and, by the
/// sample tests, executed) source file PATH. Edit the region, then paste it into the README (the failure message
/// shows the text to paste).
/// </summary>
public sealed partial class ReadmeTests
{
    [Fact]
    [Trait("Tier", "host")]
    public void Readme_EveryCSharpBlock_IsACompiledSampleRegionVerbatim()
    {
        string[] readme = File.ReadAllLines(Path.Combine(Sample.RepoRoot, "README.md"));
        var checkedBlocks = new List<string>();
        for (int i = 0; i < readme.Length; i++)
        {
            if (!CSharpFence().IsMatch(readme[i]))
            {
                continue;
            }
            int markerLine = i - 1;
            while (markerLine >= 0 && readme[markerLine].Trim().Length == 0)
            {
                markerLine--;
            }
            Match marker = SnippetMarker().Match(markerLine >= 0 ? readme[markerLine] : "");
            marker.Success.ShouldBeTrue($"README.md line {i + 1}: a C# block must follow <!-- snippet: PATH#NAME --> naming the compiled region it shows");
            int end = Array.FindIndex(readme, i + 1, l => l.TrimEnd() == "```");
            end.ShouldBeGreaterThan(i, $"README.md line {i + 1}: the C# block is not closed");
            string block = string.Join('\n', readme[(i + 1)..end]);

            string path = marker.Groups["path"].Value, name = marker.Groups["name"].Value;
            string region = Region(path, name);
            block.ShouldBe(region, $"README.md line {i + 1} differs from {path} #region README: {name}; paste this:\n{region}\n");
            checkedBlocks.Add($"{path}#{name}");
            i = end;
        }
        checkedBlocks.ShouldNotBeEmpty("README.md shows the library's use in C# blocks taken from the samples");

        // And every README region of the samples is shown: a region nobody pastes would mislead its editor.
        string[] regions = [.. Directory.EnumerateFiles(Path.Combine(Sample.RepoRoot, "samples"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select(l => RegionStart().Match(l)).Where(m => m.Success)
                .Select(m => $"{Path.GetRelativePath(Sample.RepoRoot, f)}#{m.Groups["name"].Value}"))];
        checkedBlocks.ShouldBe(regions, ignoreOrder: true);
    }

    /// <summary>The lines between <c>#region README: name</c> and its <c>#endregion</c>, less their common indentation.</summary>
    private static string Region(string path, string name)
    {
        string file = Path.Combine(Sample.RepoRoot, path);
        File.Exists(file).ShouldBeTrue($"README.md names {path}, which does not exist");
        string[] lines = File.ReadAllLines(file);
        int start = Array.FindIndex(lines, l => RegionStart().Match(l) is { Success: true } m && m.Groups["name"].Value == name);
        start.ShouldBeGreaterThanOrEqualTo(0, $"{path} has no #region README: {name}");
        int end = Array.FindIndex(lines, start + 1, l => l.Trim() == "#endregion");
        end.ShouldBeGreaterThan(start, $"{path}: #region README: {name} has no #endregion");
        string[] body = lines[(start + 1)..end];
        int indent = body.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join('\n', body.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
    }

    [GeneratedRegex(@"^```(csharp|cs|c#)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex CSharpFence();

    [GeneratedRegex(@"^<!-- snippet: (?<path>[^#\s]+)#(?<name>[^>]+?) -->\s*$")]
    private static partial Regex SnippetMarker();

    [GeneratedRegex(@"^\s*#region README: (?<name>.+?)\s*$")]
    private static partial Regex RegionStart();
}
