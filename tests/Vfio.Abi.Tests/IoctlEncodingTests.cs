// SPDX-License-Identifier: MIT
using System.Reflection;
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary><c>IoctlEncoding</c> (found by reflection, public or internal) against golden values (rust-vmm style) and its argument checks.</summary>
public sealed class IoctlEncodingTests
{
    public static TheoryData<uint, Architecture, uint> GoldenValues => new()
    {
        { 100, Architecture.X64, 0x3B64 },               // VFIO_GET_API_VERSION
        { 106, Architecture.Arm64, 0x3B6A },             // VFIO_GROUP_GET_DEVICE_FD
        { 112, Architecture.RiscV64, 0x3B70 },           // VFIO_IOMMU_GET_INFO
        { 121, Architecture.S390x, 0x3B79 },             // VFIO_EEH_PE_OP
        { 0x80, Architecture.LoongArch64, 0x3B80 },      // IOMMU_DESTROY
        { 0x8E, Architecture.X86, 0x3B8E },              // IOMMU_FAULT_QUEUE_ALLOC
        { 0x85, Architecture.Arm, 0x3B85 },              // IOMMU_IOAS_MAP
        { 0x85, Architecture.Armv6, 0x3B85 },
        { 100, Architecture.Ppc64le, 0x20003B64 },
        { 113, Architecture.Ppc64le, 0x20003B71 },       // VFIO_IOMMU_MAP_DMA
        { 0x8C, Architecture.Ppc64le, 0x20003B8C },      // IOMMU_HWPT_GET_DIRTY_BITMAP
        { 0, Architecture.X64, 0x3B00 },
        { 0xFF, Architecture.X64, 0x3BFF },
        { 0xFF, Architecture.Ppc64le, 0x20003BFF },
    };

    private const BindingFlags Static = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static;

    private static readonly Func<uint, uint> s_ioCurrent = UapiModel.IoctlEncoding.GetMethod("Io", Static, [typeof(uint)])!.CreateDelegate<Func<uint, uint>>();

    private static readonly Func<Architecture, uint> s_directionNone =
        UapiModel.IoctlEncoding.GetMethod("DirectionNone", Static, [typeof(Architecture)])!.CreateDelegate<Func<Architecture, uint>>();

    [Theory]
    [MemberData(nameof(GoldenValues))]
    public void Io_KnownArchitecture_ReturnsGoldenValue(uint nr, Architecture architecture, uint expected)
    {
        UapiModel.Io(nr, architecture).ShouldBe(expected, $"Io({nr}, {architecture})");
    }

    [Fact]
    public void Io_WithoutArchitecture_UsesProcessArchitecture()
    {
        UapiModel.IoctlEncoding.GetProperty("Current", Static)!.GetValue(null).ShouldBe(RuntimeInformation.ProcessArchitecture);
        s_ioCurrent(117).ShouldBe(UapiModel.Io(117, RuntimeInformation.ProcessArchitecture));
    }

    [Theory]
    [InlineData(256u)]
    [InlineData(0x1_0000u)]
    [InlineData(0xFFFF_FFFFu)]
    public void Io_NrAbove255_ThrowsArgumentOutOfRange(uint nr)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => UapiModel.Io(nr, Architecture.X64)).ParamName.ShouldBe("nr");
        Should.Throw<ArgumentOutOfRangeException>(() => UapiModel.Io(nr, Architecture.Ppc64le)).ParamName.ShouldBe("nr");
    }

    [Theory]
    [InlineData(Architecture.Wasm)]
    [InlineData(Architecture.Ppc64le + 1000)]
    public void Io_UnknownArchitecture_ThrowsPlatformNotSupported(Architecture architecture)
    {
        Should.Throw<PlatformNotSupportedException>(() => UapiModel.Io(100, architecture));
        Should.Throw<PlatformNotSupportedException>(() => s_directionNone(architecture));
    }
}
