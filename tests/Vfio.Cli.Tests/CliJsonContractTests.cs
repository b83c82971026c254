// SPDX-License-Identifier: MIT
using System.Text.Json;
using System.Text.RegularExpressions;
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary>
/// The JSON contract (docs/cli-json.md): every command, succeeding and failing, prints one envelope; every field it
/// prints is documented with its type, and every documented field is printed (or sits under a null it belongs to).
/// </summary>
public sealed partial class CliJsonContractTests
{
    private const string Envelope = "Envelope (every command)";

    /// <summary>Runs that together show every field: each command, the iommufd and legacy containers, an MSI-X device, a
    /// device with a hot reset,
    /// and the failures (usage, device not found, a demo mismatch, a doctor with failed checks).</summary>
    private static readonly string[][] s_runs =
    [
        ["list", "--simulate", "--json"],
        ["info", SimulatedMachines.Edu, "--backend", "legacy", "--simulate", "--json"],
        ["info", SimulatedMachines.Nvme, "--backend", "iommufd", "--simulate", "--json"],
        ["info", SimulatedMachines.EduBehindRootPort, "--backend", "iommufd", "--simulate", "--json"],
        ["doctor", "--simulate", "--json"],
        ["demo", "--simulate", "--json"],
        ["demo", "--simulate", "--device", SimulatedMachines.Nvme, "--json"],
        ["info", "0000:00:1f.0", "--simulate", "--json"],
        ["info", "--simulate", "--json", "--no-such-option"],
        ["frobnicate", "--json"],
    ];

    [Fact]
    [Trait("Tier", "host")]
    public void EveryPrintedField_IsDocumented_WithItsType_AndEveryDocumentedField_IsPrinted()
    {
        Dictionary<string, Dictionary<string, string>> documented = ReadDocumentation();
        documented.Keys.ShouldBe([Envelope, "list", "info", "doctor", "demo"], ignoreOrder: true);
        var seen = documented.Keys.ToDictionary(static k => k, static _ => new Dictionary<string, HashSet<string>>());
        foreach (string[] args in s_runs)
        {
            using SimulatedKernel kernel = CliRun.Testbed();
            CliResult result = CliRun.Run(kernel, args);
            JsonElement root = result.Root;
            string section = root.GetProperty("command").GetString() ?? Envelope;
            foreach ((string path, string kind) in Paths(root, ""))
            {
                string owner = path.StartsWith("result.", StringComparison.Ordinal) ? section : Envelope;
                if (!seen[owner].TryGetValue(path, out HashSet<string>? kinds))
                {
                    seen[owner][path] = kinds = [];
                }
                kinds.Add(kind);
            }
        }
        foreach ((string section, Dictionary<string, HashSet<string>> paths) in seen)
        {
            foreach ((string path, HashSet<string> kinds) in paths)
            {
                documented[section].TryGetValue(path, out string? type).ShouldBeTrue($"'{path}' ({section}) is printed but not documented in docs/cli-json.md");
                foreach (string kind in kinds)
                {
                    type!.ShouldContain(kind, Case.Sensitive, $"'{path}' ({section}) is documented as '{type}' but printed as {kind}");
                }
            }
        }
        foreach ((string section, Dictionary<string, string> fields) in documented)
        {
            foreach (string path in fields.Keys)
            {
                bool printed = seen[section].ContainsKey(path) || NullAncestor(seen[section], path);
                printed.ShouldBeTrue($"docs/cli-json.md documents '{path}' ({section}), which no run printed");
            }
        }
    }

    [Theory]
    [Trait("Tier", "host")]
    [InlineData("Usage", 2, "info", "--simulate", "--json", "--no-such-option")]
    [InlineData("Usage", 2, "frobnicate", "--json")]
    [InlineData("DeviceNotFound", 3, "info", "0000:00:1f.0", "--simulate", "--json")]
    [InlineData("Mismatch", 7, "demo", "--simulate", "--device", "0000:00:03.0", "--json")]
    [InlineData("DeviceNotFound", 3, "demo", "--simulate", "--device", "0000:00:1f.0", "--json")]
    [InlineData("BackendUnavailable", 6, "info", "0000:00:02.0", "--backend", "spapr-tce", "--simulate", "--json")]
    public void EveryFailure_HasOneErrorShape_InTheEnvelope(string kind, int exitCode, params string[] args)
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, args);

        result.ExitCode.ShouldBe(exitCode, result.ToString());
        JsonElement root = result.Root;
        (root.GetProperty("schemaVersion").GetInt32(), root.GetProperty("tool").GetString()).ShouldBe((1, "vfioctl"));
        root.GetProperty("command").GetString().ShouldBe(args[0] is "list" or "info" or "doctor" or "demo" ? args[0] : null);
        (root.GetProperty("ok").GetBoolean(), root.GetProperty("exitCode").GetInt32()).ShouldBe((false, exitCode));
        JsonElement error = result.JsonError;
        error.EnumerateObject().Select(static p => p.Name).ShouldBe(["kind", "exitCode", "message", "fix"]);
        (error.GetProperty("kind").GetString(), error.GetProperty("exitCode").GetInt32()).ShouldBe((kind, exitCode));
        error.GetProperty("message").GetString().ShouldNotBeNullOrWhiteSpace();
        error.GetProperty("fix").GetString().ShouldNotBeNullOrWhiteSpace();
        result.Error.ShouldContain("vfioctl: error: " + error.GetProperty("message").GetString());
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    [Trait("Tier", "host")]
    public void Success_HasNoError_AndTheToolsVersion()
    {
        using SimulatedKernel kernel = CliRun.Testbed();
        CliResult result = CliRun.Run(kernel, ["demo", "--simulate", "--json"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        JsonElement root = result.Root;
        (root.GetProperty("ok").GetBoolean(), root.GetProperty("exitCode").GetInt32(), root.GetProperty("error").ValueKind).ShouldBe((true, 0, JsonValueKind.Null));
        root.GetProperty("version").GetString().ShouldBe(JsonContract.ToolVersion);
        root.GetProperty("version").GetString()!.ShouldMatch(@"^\d+\.\d+\.\d+(-[a-z]+\.\d+)?$");
    }

    /// <summary>Every path below <paramref name="element"/> (arrays as <c>[]</c>) with its JSON kind; array elements
    /// themselves are not fields.</summary>
    private static IEnumerable<(string Path, string Kind)> Paths(JsonElement element, string path)
    {
        if (path.Length > 0 && !path.EndsWith("[]", StringComparison.Ordinal))
        {
            yield return (path, element.ValueKind switch
            {
                JsonValueKind.Object => "object",
                JsonValueKind.Array => "array",
                JsonValueKind.String => "string",
                JsonValueKind.Number => "number",
                JsonValueKind.True or JsonValueKind.False => "boolean",
                _ => "null",
            });
        }
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in element.EnumerateObject())
            {
                foreach ((string, string) child in Paths(property.Value, path.Length == 0 ? property.Name : path + "." + property.Name))
                {
                    yield return child;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement item in element.EnumerateArray())
            {
                foreach ((string, string) child in Paths(item, path + "[]"))
                {
                    yield return child;
                }
            }
        }
    }

    /// <summary>True when a field above <paramref name="path"/> was printed as null (or as an empty array), so the
    /// documented field could not show.</summary>
    private static bool NullAncestor(Dictionary<string, HashSet<string>> seen, string path)
    {
        for (int dot = path.LastIndexOf('.'); dot > 0; dot = path.LastIndexOf('.', dot - 1))
        {
            string parent = path[..dot];
            string field = parent.EndsWith("[]", StringComparison.Ordinal) ? parent[..^2] : parent;
            if (seen.TryGetValue(field, out HashSet<string>? kinds) && (kinds.Contains("null") || kinds.Contains("array")))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>docs/cli-json.md's tables: section (the "## " heading) → field path → documented type.</summary>
    private static Dictionary<string, Dictionary<string, string>> ReadDocumentation()
    {
        string file = Path.Combine(ToolPackageTests.RepoRoot, "docs", "cli-json.md");
        var sections = new Dictionary<string, Dictionary<string, string>>();
        Dictionary<string, string>? current = null;
        foreach (string line in File.ReadLines(file))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                sections[line[3..].Trim()] = current = [];
            }
            else if (current is not null && FieldRow().Match(line) is { Success: true } row)
            {
                current.Add(row.Groups["path"].Value, row.Groups["type"].Value);
            }
        }
        return sections;
    }

    [GeneratedRegex(@"^\| `(?<path>[A-Za-z][A-Za-z0-9.\[\]]*)` \| (?<type>[^|]+) \|")]
    private static partial Regex FieldRow();
}
