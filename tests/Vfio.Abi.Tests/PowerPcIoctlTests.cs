// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;
using Vfio.Core.Interop;

namespace Vfio.Abi.Tests;

/// <summary>
/// The powerpc (sPAPR host) encoding of every ioctl: <c>_IOC_NONE</c> is 1 at bit 29 there. Checked three ways:
/// against the x86-64 value with bit 29 set, against the ppc64 column of the reference tables (§1.1/§1.2), and
/// against gcc evaluating the 6.12 headers with powerpc64le's <c>asm/ioctl.h</c>.
/// </summary>
public sealed class PowerPcIoctlTests
{
    private const uint PowerPcDirectionNone = 0x2000_0000;

    [Theory]
    [MemberData(nameof(UapiModel.IoctlNames), MemberType = typeof(UapiModel))]
    public void Ioctl_Ppc64le_IsX86ValueWithBit29(string name)
    {
        var ioctl = UapiModel.Ioctl(name);
        ioctl.IoctlType.ShouldBe(IoctlEncoding.VFIO_TYPE, $"{name}: ioctl type of 0x{ioctl.Value:X}");
        ioctl.Value.ShouldBe(IoctlEncoding.Io(ioctl.Nr), $"{name}: the field is not Io(nr) for {IoctlEncoding.Current}");

        var x86 = IoctlEncoding.Io(ioctl.Nr, Architecture.X64);
        var ppc = IoctlEncoding.Io(ioctl.Nr, Architecture.Ppc64le);
        ppc.ShouldBe(PowerPcDirectionNone | x86, $"{name}: Io({ioctl.Nr}, Ppc64le) = 0x{ppc:X}, 0x20000000 | x86-64 0x{x86:X} = 0x{PowerPcDirectionNone | x86:X}");
    }

    [Theory]
    [MemberData(nameof(UapiModel.IoctlNames), MemberType = typeof(UapiModel))]
    public void Ioctl_MatchesReferenceTable(string name)
    {
        var ioctl = UapiModel.Ioctl(name);
        var rows = ReferenceIoctlTable.Rows.Where(r => r.Name == name).ToArray();
        rows.Length.ShouldBe(1, $"{name}: expected one row in §1.1/§1.2 of {ReferenceIoctlTable.FilePath}");
        var row = rows[0];

        var x86 = IoctlEncoding.Io(ioctl.Nr, Architecture.X64);
        var ppc = IoctlEncoding.Io(ioctl.Nr, Architecture.Ppc64le);
        var differences = new List<string>();
        if (row.X86Value != x86)
        {
            differences.Add($"x86-64: C# 0x{x86:X}, reference 0x{row.X86Value:X}");
        }

        if (row.Ppc64Value != ppc)
        {
            differences.Add($"ppc64: C# 0x{ppc:X}, reference 0x{row.Ppc64Value:X}");
        }

        if (row.KernelSizeOf is { } size && row.Argument.StartsWith("struct ", StringComparison.Ordinal))
        {
            var structName = row.Argument["struct ".Length..].Split(' ')[0];
            var managed = UapiModel.Structs.SingleOrDefault(s => s.Name == structName);
            if (managed is null)
            {
                differences.Add($"argument struct {structName} is not declared");
            }
            else if (managed.Size != size)
            {
                differences.Add($"sizeof(struct {structName}): C# {managed.Size}, reference {size}");
            }
        }

        differences.ShouldBeEmpty($"{name} differs from the reference row: {row.Line}");
    }

    [Theory]
    [MemberData(nameof(UapiModel.IoctlNames), MemberType = typeof(UapiModel))]
    public void Ioctl_Ppc64le_MatchesPowerPcKernelHeaders(string name)
    {
        var ioctl = UapiModel.Ioctl(name);
        var kernel = KernelProbe.Ppc64le;
        kernel.ThrowIfNotCompiled(KernelProbe.IoctlKey(name));

        var ppc = IoctlEncoding.Io(ioctl.Nr, Architecture.Ppc64le);
        kernel.Ioctls[name].ShouldBe(ppc, $"{name}: C# 0x{ppc:X}, C (powerpc64le asm/ioctl.h) 0x{kernel.Ioctls[name]:X}");
    }

    [Fact]
    public void ReferenceTable_EveryIoctlOfLinux612_IsDeclared()
    {
        var declared = UapiModel.Ioctls.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        ReferenceIoctlTable.Rows
            .Where(r => !ReferenceIoctlTable.NotIn612.Contains(r.Name) && !declared.Contains(r.Name))
            .Select(r => r.Name)
            .ShouldBeEmpty("ioctls of the reference tables that VfioUapi/IommuUapi do not declare");
    }

    [Fact]
    public void ReferenceTable_RowsNotIn612_AreNotInTheHeaders()
    {
        var headers = File.ReadAllText(Path.Combine(UapiHeaders.Current.Include, "linux", "iommufd.h")) +
            File.ReadAllText(Path.Combine(UapiHeaders.Current.Include, "linux", "vfio.h"));
        ReferenceIoctlTable.NotIn612.Where(name => headers.Contains(name, StringComparison.Ordinal)).ShouldBeEmpty("names listed as not in 6.12 but present in the headers");
    }
}
