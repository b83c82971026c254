// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>
/// The probes compile, per architecture, against Linux 6.12 headers that really come from the fetched package, with
/// that architecture's compiler; and the structs the headers define are the declared ones.
/// </summary>
public sealed partial class KernelHeadersTests
{
    /// <summary>
    /// Structs of the headers deliberately not declared: the s390 zPCI device-info capabilities of
    /// <c>linux/vfio_zdev.h</c> (no s390 backend), the NVLink2 region capabilities (deprecated, never emitted by
    /// 6.12) and the migration region of the v1 migration protocol (deprecated, removed from the kernel's drivers).
    /// Their capability and region ids are declared.
    /// </summary>
    private static readonly HashSet<string> s_notDeclared = new(StringComparer.Ordinal)
    {
        "vfio_device_info_cap_zpci_base",
        "vfio_device_info_cap_zpci_group",
        "vfio_device_info_cap_zpci_util",
        "vfio_device_info_cap_zpci_pfip",
        "vfio_region_info_cap_nvlink2_ssatgt",
        "vfio_region_info_cap_nvlink2_lnkspd",
        "vfio_device_migration_info",
    };

    [Theory]
    [MemberData(nameof(AbiArch.Names), MemberType = typeof(AbiArch))]
    public void Headers_AreLinux612(string arch)
    {
        var code = KernelProbe.For(arch).LinuxVersionCode;
        $"{code >> 16}.{(code >> 8) & 0xFF}".ShouldBe("6.12", $"LINUX_VERSION_CODE of {UapiHeaders.Current.Include} for {arch} is {code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}");
    }

    [Theory]
    [MemberData(nameof(AbiArch.Names), MemberType = typeof(AbiArch))]
    public void Object_IsElf64LittleEndianOfTheArchitecture(string arch)
    {
        var target = AbiArch.Get(arch);
        var kernel = KernelProbe.For(target);
        kernel.ElfMachine.ShouldBe(target.ElfMachine, $"{target.Compiler} wrote an object for e_machine {kernel.ElfMachine}, not {arch}");
        if (target == AbiArch.Ppc64le)
        {
            (kernel.ElfFlags & 3).ShouldBe(2u, "the ppc64le object is not ELFv2 (e_flags)");
        }
    }

    [Theory]
    [MemberData(nameof(AbiArch.Names), MemberType = typeof(AbiArch))]
    public void Headers_LinuxAndAsmIncludes_ResolveFromTheFetchedHeaders(string arch)
    {
        var target = AbiArch.Get(arch);
        var headers = UapiHeaders.Current;
        var root = headers.Include.TrimEnd('/') + "/";
        var kernelHeaders = KernelProbe.For(target).IncludedHeaders
            .Where(h => h.Contains("/linux/", StringComparison.Ordinal) || h.Contains("/asm/", StringComparison.Ordinal) || h.Contains("/asm-generic/", StringComparison.Ordinal))
            .ToArray();

        kernelHeaders.ShouldContain(h => h.EndsWith("/linux/vfio.h", StringComparison.Ordinal), "gcc -H lists no linux/vfio.h");
        kernelHeaders.ShouldContain(h => h == headers.ArchInclude(target) + "/asm/ioctl.h", $"gcc -H lists no {headers.ArchInclude(target)}/asm/ioctl.h");
        kernelHeaders.Where(h => !h.StartsWith(root, StringComparison.Ordinal))
            .ShouldBeEmpty($"kernel headers included from outside {root} (the system's or a cross sysroot's older headers?)");
        kernelHeaders.Where(h => h.Contains("/asm/", StringComparison.Ordinal) && !h.StartsWith(headers.ArchInclude(target) + "/", StringComparison.Ordinal))
            .ShouldBeEmpty($"asm/ headers of another architecture than {arch}");
    }

    [Fact]
    public void Headers_EveryStruct_IsDeclaredOrListedAsNotDeclared()
    {
        var include = UapiHeaders.Current.Include;
        var defined = new[] { "linux/vfio.h", "linux/vfio_zdev.h", "linux/iommufd.h" }
            .SelectMany(h => File.ReadLines(Path.Combine(include, h)))
            .Select(line => StructDefinition().Match(line))
            .Where(m => m.Success)
            .Select(m => m.Groups[1].Value)
            .ToHashSet(StringComparer.Ordinal);
        var declared = UapiModel.Structs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);

        defined.Except(declared).Order(StringComparer.Ordinal)
            .ShouldBe(s_notDeclared.Order(StringComparer.Ordinal), "structs of linux/vfio.h, linux/vfio_zdev.h and linux/iommufd.h without a C# declaration");
        declared.Except(defined).ShouldBeEmpty("C# structs that linux/vfio.h, linux/vfio_zdev.h and linux/iommufd.h do not define");
    }

    [GeneratedRegex(@"^struct\s+(\w+)\s*\{")]
    private static partial Regex StructDefinition();
}
