// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>
/// Every public struct of <c>Vfio.Core.Interop</c> against the 64-bit layouts of
/// <c>../shared/reference/kernel-struct-layouts-6.12.json</c>: size, alignment, the complete member list (so a
/// member missing from the C# declaration is caught) and each flexible array's offset constant.
/// </summary>
public sealed class ReferenceLayoutTests
{
    /// <summary>
    /// Reference structs deliberately not declared: s390 zPCI device-info capabilities (no s390 backend) and the
    /// NVLink2 region capabilities (deprecated, never emitted by 6.12). Their capability ids are declared.
    /// </summary>
    private static readonly HashSet<string> s_notDeclared = new(StringComparer.Ordinal)
    {
        "vfio_device_info_cap_zpci_base",
        "vfio_device_info_cap_zpci_group",
        "vfio_device_info_cap_zpci_util",
        "vfio_device_info_cap_zpci_pfip",
        "vfio_region_info_cap_nvlink2_ssatgt",
        "vfio_region_info_cap_nvlink2_lnkspd",
    };

    [Theory]
    [MemberData(nameof(UapiModel.StructNames), MemberType = typeof(UapiModel))]
    public void Struct_MatchesReferenceLayout(string name)
    {
        var managed = UapiModel.Struct(name);
        ReferenceLayouts.Layouts64.TryGetValue(name, out var reference)
            .ShouldBeTrue($"struct {name} is not in {ReferenceLayouts.FilePath}");

        var differences = new List<string>();
        KernelStructLayoutTests.Compare(differences, $"sizeof(struct {name})", managed.Size, (ulong)reference!.Size);
        var declaredAlign = managed.Fields.Select(f => f.Align).DefaultIfEmpty(1).Max();
        if (managed.FlexibleArrays.Count > 0 && reference.Align > declaredAlign)
        {
            // Alignment raised by the flexible array's element type (see KernelStructLayoutTests); C# cannot express it.
            KernelStructLayoutTests.Compare(differences, $"alignment of struct {name} without its flexible array (reference: {reference.Align} with it)", managed.Align, (ulong)declaredAlign);
        }
        else
        {
            KernelStructLayoutTests.Compare(differences, $"alignment of struct {name}", managed.Align, (ulong)reference.Align);
        }

        var fields = managed.Fields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var flexibleArrays = managed.FlexibleArrays.ToDictionary(f => f.Member, StringComparer.Ordinal);
        foreach (var expected in reference.Fields)
        {
            if (expected.IsFlexibleArray)
            {
                if (fields.ContainsKey(expected.Name))
                {
                    differences.Add($"{name}.{expected.Name}[] is a flexible array member but is declared as a field");
                }

                if (flexibleArrays.Remove(expected.Name, out var flex))
                {
                    KernelStructLayoutTests.Compare(differences, $"offsetof({name}.{expected.Name}[])", flex.Offset, (ulong)expected.Offset);
                }
                else
                {
                    differences.Add($"{name}.{expected.Name}[] (flexible, offset {expected.Offset}) has no public const int {expected.Name}{UapiModel.FlexibleArrayOffsetSuffix}");
                }

                continue;
            }

            if (!fields.Remove(expected.Name, out var field))
            {
                differences.Add($"{name}.{expected.Name} (offset {expected.Offset}, size {expected.Size}) is not declared");
                continue;
            }

            KernelStructLayoutTests.Compare(differences, $"offsetof({name}.{expected.Name})", field.Offset, (ulong)expected.Offset);
            KernelStructLayoutTests.Compare(differences, $"sizeof({name}.{expected.Name})", field.Size, (ulong)expected.Size);
        }

        differences.AddRange(fields.Keys.Select(f => $"{name}.{f} is declared but not in the reference"));
        differences.AddRange(flexibleArrays.Keys.Select(f => $"{name}.{f}{UapiModel.FlexibleArrayOffsetSuffix} names no flexible array of the reference"));
        differences.ShouldBeEmpty($"struct {name} differs from {ReferenceLayouts.FilePath}");
    }

    [Fact]
    public void ReferenceStructs_NotDeclared_AreTheDocumentedOnes()
    {
        var declared = UapiModel.Structs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        ReferenceLayouts.Layouts64.Keys.Where(k => !declared.Contains(k)).Order(StringComparer.Ordinal)
            .ShouldBe(s_notDeclared.Order(StringComparer.Ordinal), "reference structs without a C# declaration");
    }
}
