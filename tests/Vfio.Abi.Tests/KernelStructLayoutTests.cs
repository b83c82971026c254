// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>
/// Every struct of <c>Vfio.Core.Interop</c>, as the runtime lays it out on this host, against each architecture's
/// gcc and the 6.12 headers: <c>sizeof</c>, <c>_Alignof</c>, and per member <c>offsetof</c>, <c>sizeof</c>, element
/// size and signedness; flexible array offsets documented as <c>&lt;member&gt;_offset</c> constants against
/// <c>offsetof</c>. x86-64, arm64 and ppc64le are all LP64 with natural alignment, so one managed layout must
/// match the three.
/// </summary>
/// <remarks>
/// Alignment: a flexible array member whose element type is more aligned than every declared member (e.g.
/// <c>areas[]</c> of <c>__u64</c> pairs after <c>__u32</c> fields) raises the C struct's alignment, which C# cannot
/// express without declaring the array. For such structs the C# alignment must equal the largest
/// <c>_Alignof</c> of the declared members instead; sizes and offsets are still compared exactly. The difference
/// matters only when such a struct is embedded in another one, which the kernel never does (it places capabilities
/// at 8-byte aligned offsets of a buffer).
/// </remarks>
public sealed class KernelStructLayoutTests
{
    [Theory]
    [MemberData(nameof(UapiModel.StructRows), MemberType = typeof(UapiModel))]
    public void Struct_MatchesKernelHeaders(string arch, string name)
    {
        var managed = UapiModel.Struct(name);
        var kernel = KernelProbe.For(arch);
        kernel.ThrowIfNotCompiled(KernelProbe.StructKey(name));

        var differences = new List<string>(managed.Problems.Select(p => $"{name}: {p}"));
        var (size, align) = kernel.Structs[name];
        Compare(differences, $"sizeof(struct {name})", managed.Size, size);
        var declaredAlign = managed.Fields.Select(f => kernel.Fields[(name, f.Name)].Align).DefaultIfEmpty(1ul).Max();
        if (managed.FlexibleArrays.Count == 0 || declaredAlign == align)
        {
            Compare(differences, $"_Alignof(struct {name})", managed.Align, align);
        }
        else
        {
            Compare(differences, $"_Alignof(struct {name}) without its flexible array (C: {align} with it)", managed.Align, declaredAlign);
        }

        foreach (var field in managed.Fields)
        {
            var c = kernel.Fields[(name, field.Name)];
            var member = $"{name}.{field.Name}";
            Compare(differences, $"offsetof({member})", field.Offset, c.Offset);
            Compare(differences, $"sizeof({member})", field.Size, c.Size);
            Compare(differences, $"_Alignof({member})", field.Align, c.Align);
            Compare(differences, $"element size of {member}", field.ElementSize, c.ElementSize);
            var expected = field.Kind switch
            {
                FieldKind.Signed => "s",
                FieldKind.Struct => "r",
                _ => field.MayBePointer ? "up" : "u",
            };
            if (!expected.Contains(c.Kind, StringComparison.Ordinal))
            {
                differences.Add($"kind of {member}: C# {field.FieldType.Name} ({field.Kind}), C '{c.Kind}' (u unsigned, s signed, p pointer, r struct, n union)");
            }
        }

        foreach (var flex in managed.FlexibleArrays)
        {
            Compare(differences, $"offsetof({name}.{flex.Member}[]) ({name}.{flex.Member}{UapiModel.FlexibleArrayOffsetSuffix})", flex.Offset, kernel.FlexibleArrays[(name, flex.Member)]);
        }

        differences.ShouldBeEmpty($"struct {name} differs from the 6.12 headers for {arch} ({UapiHeaders.Current.Include})");
    }

    /// <summary>
    /// The gaps the C structs themselves have: implicit padding before an 8-byte aligned member, which the kernel
    /// headers do not name (C# leaves the same bytes out, and the layout comparison proves the offsets agree).
    /// </summary>
    private static readonly Dictionary<string, string> s_implicitPadding = new(StringComparer.Ordinal)
    {
        ["vfio_eeh_pe_op"] = "bytes 12..15 before err",
        ["vfio_iommu_type1_info_cap_migration"] = "bytes 12..15 before pgsize_bitmap",
    };

    /// <summary>
    /// The declared fields cover every byte of the struct: the kernel's uAPI structs name their padding
    /// (<c>__u32 pad</c>, <c>__reserved</c>) except the gaps listed in <see cref="s_implicitPadding"/>, so any other
    /// gap in the C# layout is a member the declaration left out, which the per-field comparison alone would not see.
    /// </summary>
    [Fact]
    public void ImplicitPadding_ListsOnlyDeclaredStructs()
    {
        s_implicitPadding.Keys.Where(k => !UapiModel.Structs.Any(s => s.Name == k)).ShouldBeEmpty("stale entries in s_implicitPadding");
    }

    [Theory]
    [MemberData(nameof(UapiModel.StructNames), MemberType = typeof(UapiModel))]
    public void Struct_DeclaredFields_CoverEveryByte(string name)
    {
        var managed = UapiModel.Struct(name);
        var gaps = new List<string>();
        var next = 0;
        foreach (var field in managed.Fields)
        {
            if (field.Offset > next)
            {
                gaps.Add($"bytes {next}..{field.Offset - 1} before {field.Name}");
            }

            next = Math.Max(next, field.Offset + field.Size);
        }

        var end = managed.FlexibleArrays.Count > 0 ? managed.FlexibleArrays.Min(f => f.Offset) : managed.Size;
        if (end > next)
        {
            gaps.Add($"bytes {next}..{end - 1} at the end");
        }

        gaps.RemoveAll(gap => s_implicitPadding.GetValueOrDefault(name) == gap);
        gaps.ShouldBeEmpty($"struct {name} has bytes no declared field covers (a member left out?)");
    }

    internal static void Compare(List<string> differences, string what, long managed, ulong kernel)
    {
        if (managed < 0 || (ulong)managed != kernel)
        {
            differences.Add($"{what}: C# {managed}, C {kernel}");
        }
    }
}
