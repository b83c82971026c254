// SPDX-License-Identifier: MIT
using System.Text.Json;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>One member of a struct in <c>kernel-struct-layouts-6.12.json</c>.</summary>
/// <param name="Name">Member name, without the <c>*</c> that marks a flexible array.</param>
/// <param name="IsFlexibleArray">Whether the JSON marks it as a flexible array member.</param>
internal sealed record ReferenceField(string Name, int Offset, int Size, bool IsFlexibleArray);

/// <summary>One struct of <c>kernel-struct-layouts-6.12.json</c>: <c>[size, align, [[field, offset, size], …]]</c>.</summary>
internal sealed record ReferenceStruct(string Name, int Size, int Align, IReadOnlyList<ReferenceField> Fields);

/// <summary>The machine-readable reference layouts (<c>../shared/reference/kernel-struct-layouts-6.12.json</c>, key <c>"64"</c>).</summary>
internal static class ReferenceLayouts
{
    private static readonly Lazy<IReadOnlyDictionary<string, ReferenceStruct>> s_layouts64 = new(() => Load("64"));

    public static string FilePath => Path.Combine(RepoLayout.SharedReference, "kernel-struct-layouts-6.12.json");

    public static IReadOnlyDictionary<string, ReferenceStruct> Layouts64 => s_layouts64.Value;

    private static Dictionary<string, ReferenceStruct> Load(string abi)
    {
        if (!File.Exists(FilePath))
        {
            throw new InvalidOperationException($"{FilePath} does not exist (expected at ../shared/reference relative to the repository root {RepoLayout.Root}).");
        }

        using var document = JsonDocument.Parse(File.ReadAllText(FilePath));
        var result = new Dictionary<string, ReferenceStruct>(StringComparer.Ordinal);
        foreach (var entry in document.RootElement.GetProperty(abi).EnumerateObject())
        {
            var value = entry.Value;
            var fields = value[2].EnumerateArray()
                .Select(f =>
                {
                    var name = f[0].GetString()!;
                    var flexible = name.StartsWith('*');
                    return new ReferenceField(flexible ? name[1..] : name, f[1].GetInt32(), f[2].GetInt32(), flexible);
                })
                .ToArray();
            result[entry.Name] = new ReferenceStruct(entry.Name, value[0].GetInt32(), value[1].GetInt32(), fields);
        }

        return result;
    }
}
