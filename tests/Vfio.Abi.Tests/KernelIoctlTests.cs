// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>
/// Every ioctl number of <c>VfioUapi</c> and <c>IommuUapi</c>: <c>IoctlEncoding</c>'s number for each architecture
/// against that architecture's header macro (powerpc's <c>_IOC_NONE</c> is 1 at bit 29, the others' 0), and the
/// ioctls the headers define against those declared.
/// </summary>
public sealed partial class KernelIoctlTests
{
    [Theory]
    [MemberData(nameof(UapiModel.IoctlRows), MemberType = typeof(UapiModel))]
    public void Ioctl_MatchesKernelHeaders(string arch, string name)
    {
        var ioctl = UapiModel.Ioctl(name);
        var target = AbiArch.Get(arch);
        var kernel = KernelProbe.For(target);
        kernel.ThrowIfNotCompiled(KernelProbe.IoctlKey(name));

        var managed = UapiModel.Io(ioctl.Nr, target.Architecture);
        ((ulong)managed).ShouldBe(kernel.Ioctls[name], $"{name} on {arch}: C# IoctlEncoding.Io({ioctl.Nr}, {target.Architecture}) = 0x{managed:X}, C 0x{kernel.Ioctls[name]:X}");
    }

    /// <summary>The field holds <c>Io(nr)</c> for the architecture this process runs on, with the VFIO ioctl type.</summary>
    [Theory]
    [MemberData(nameof(UapiModel.IoctlNames), MemberType = typeof(UapiModel))]
    public void Ioctl_Field_IsIoOfItsNumberForThisProcess(string name)
    {
        var ioctl = UapiModel.Ioctl(name);
        ioctl.IoctlType.ShouldBe((uint)';', $"{name}: ioctl type of 0x{ioctl.Value:X}");
        ioctl.Value.ShouldBe(UapiModel.Io(ioctl.Nr, RuntimeInformation.ProcessArchitecture), $"{name}: the field is not Io(nr) for {RuntimeInformation.ProcessArchitecture}");
    }

    /// <summary>The sPAPR TCE backend's ioctls and structs (POWER is where it runs): each is a row of the per-architecture
    /// theories for ppc64le, and its number there carries powerpc's <c>_IOC_NONE</c> bit and matches the header.</summary>
    [Fact]
    public void Spapr_IoctlsAndStructs_AreProvenForPpc64le()
    {
        string[] ioctls =
        [
            "VFIO_IOMMU_SPAPR_TCE_GET_INFO", "VFIO_IOMMU_ENABLE", "VFIO_IOMMU_DISABLE", "VFIO_IOMMU_SPAPR_REGISTER_MEMORY",
            "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", "VFIO_IOMMU_SPAPR_TCE_CREATE", "VFIO_IOMMU_SPAPR_TCE_REMOVE", "VFIO_EEH_PE_OP",
            "VFIO_IOMMU_MAP_DMA", "VFIO_IOMMU_UNMAP_DMA",
        ];
        string[] structs =
        [
            "vfio_iommu_spapr_tce_info", "vfio_iommu_spapr_tce_ddw_info", "vfio_iommu_spapr_register_memory",
            "vfio_iommu_spapr_tce_create", "vfio_iommu_spapr_tce_remove", "vfio_eeh_pe_op", "vfio_eeh_pe_err",
        ];
        var target = AbiArch.Get("ppc64le");
        var kernel = KernelProbe.For(target);
        foreach (string name in ioctls)
        {
            UapiModel.IoctlRows().ShouldContain(row => row.Data.Item1 == "ppc64le" && row.Data.Item2 == name, name);
            kernel.ThrowIfNotCompiled(KernelProbe.IoctlKey(name));
            uint number = UapiModel.Io(UapiModel.Ioctl(name).Nr, target.Architecture);
            (number & 0x2000_0000u).ShouldBe(0x2000_0000u, $"{name}: powerpc's _IOC_NONE is bit 29");
            ((ulong)number).ShouldBe(kernel.Ioctls[name], name);
        }
        foreach (string name in structs)
        {
            UapiModel.StructRows().ShouldContain(row => row.Data.Item1 == "ppc64le" && row.Data.Item2 == name, name);
        }
    }

    [Fact]
    public void Headers_EveryIoctl_IsDeclared()
    {
        var include = UapiHeaders.Current.Include;
        var defined = new[] { "linux/vfio.h", "linux/iommufd.h" }
            .SelectMany(h => File.ReadLines(Path.Combine(include, h)))
            .Select(line => IoctlDefinition().Match(line))
            .Where(m => m.Success)
            .Select(m => m.Groups[1].Value)
            .ToArray();
        defined.Length.ShouldBeGreaterThan(40, $"the ioctl definitions (#define NAME _IO(...)) were not found in {include}");
        defined.Except(UapiModel.Ioctls.Select(i => i.Name), StringComparer.Ordinal)
            .ShouldBeEmpty("ioctls of linux/vfio.h and linux/iommufd.h that VfioUapi/IommuUapi do not declare");
    }

    [GeneratedRegex(@"^#define\s+(\w+)\s+_IO\(\s*(?:VFIO_TYPE|IOMMUFD_TYPE)\s*,")]
    private static partial Regex IoctlDefinition();
}
