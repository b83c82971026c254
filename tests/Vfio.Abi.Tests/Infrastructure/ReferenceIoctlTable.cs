// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text.RegularExpressions;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>One row of the ioctl tables in §1.1/§1.2 of <c>kernel-uapi-6.12.md</c>.</summary>
/// <param name="Name">The ioctl name (the first word of the Name column).</param>
/// <param name="Section"><c>1.1</c> (VFIO) or <c>1.2</c> (iommufd).</param>
/// <param name="Argument">The argument column, e.g. <c>struct iommu_destroy</c>.</param>
/// <param name="KernelSizeOf">§1.2 only: the "sizeof (kernel)" column.</param>
/// <param name="X86Value">The x86-64/arm64/riscv value column.</param>
/// <param name="Ppc64Value">The ppc64/mips/sparc value column.</param>
/// <param name="Line">The table row as written, for messages.</param>
internal sealed record ReferenceIoctl(string Name, string Section, string Argument, int? KernelSizeOf, uint X86Value, uint Ppc64Value, string Line);

/// <summary>
/// Parses the ioctl tables of <c>../shared/reference/kernel-uapi-6.12.md</c> §1.1 and §1.2 by column header, so a
/// reordered or extended table still parses (or fails loudly).
/// </summary>
internal static partial class ReferenceIoctlTable
{
    /// <summary>Rows of the tables that are not in Linux 6.12 and so are not declared (the table says so itself).</summary>
    public static readonly IReadOnlySet<string> NotIn612 = new HashSet<string>(StringComparer.Ordinal) { "IOMMU_IOAS_MAP_FILE" };

    private static readonly Lazy<IReadOnlyList<ReferenceIoctl>> s_rows = new(Load);

    public static string FilePath => Path.Combine(RepoLayout.SharedReference, "kernel-uapi-6.12.md");

    public static IReadOnlyList<ReferenceIoctl> Rows => s_rows.Value;

    [GeneratedRegex(@"^`?([A-Za-z0-9_]+)")]
    private static partial Regex LeadingName();

    [GeneratedRegex(@"^`?(0x[0-9A-Fa-f]+)`?$")]
    private static partial Regex HexValue();

    private static List<ReferenceIoctl> Load()
    {
        if (!File.Exists(FilePath))
        {
            throw new InvalidOperationException($"{FilePath} does not exist (expected at ../shared/reference relative to the repository root {RepoLayout.Root}).");
        }

        var rows = new List<ReferenceIoctl>();
        string? section = null;
        string[]? header = null;
        foreach (var raw in File.ReadLines(FilePath))
        {
            var line = raw.Trim();
            if (line.StartsWith('#'))
            {
                section = line.StartsWith("### 1.1", StringComparison.Ordinal) ? "1.1" : line.StartsWith("### 1.2", StringComparison.Ordinal) ? "1.2" : null;
                header = null;
                continue;
            }

            if (section is null || !line.StartsWith('|'))
            {
                header = line.StartsWith('|') ? header : null;
                continue;
            }

            var cells = line.Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (header is null)
            {
                header = cells;
                continue;
            }

            if (cells.All(c => c.Trim('-', ':').Length == 0))
            {
                continue;
            }

            int Column(Func<string, bool> match) =>
                Array.FindIndex(header, h => match(h)) is var i and >= 0
                    ? i
                    : throw new InvalidOperationException($"§{section} of {FilePath}: no such column in | {string.Join(" | ", header)} |");

            var name = LeadingName().Match(cells[Column(h => h == "Name")]).Groups[1].Value;
            var x86 = cells[Column(h => h.StartsWith("x86-64", StringComparison.Ordinal))];
            var ppc = cells[Column(h => h.StartsWith("ppc64", StringComparison.Ordinal))];
            var argument = cells[Column(h => h == "argument")];
            int? sizeOf = section == "1.2" ? int.Parse(cells[Column(h => h.StartsWith("sizeof", StringComparison.Ordinal))], CultureInfo.InvariantCulture) : null;
            rows.Add(new ReferenceIoctl(name, section, argument, sizeOf, Hex(x86, line), Hex(ppc, line), line));
        }

        if (rows.Count == 0)
        {
            throw new InvalidOperationException($"No ioctl rows found in §1.1/§1.2 of {FilePath}.");
        }

        return rows;
    }

    private static uint Hex(string cell, string line)
    {
        var match = HexValue().Match(cell);
        return match.Success
            ? uint.Parse(match.Groups[1].Value.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"Not a hex value: '{cell}' in {line}");
    }
}
