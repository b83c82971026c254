// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Reflection;
using Shouldly;
using Vfio.Core;

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>
/// Property tests of what iommufd reports: the usable IOVA ranges and alignment of <c>IOMMU_IOAS_IOVA_RANGES</c>
/// (valid lists decode back; inverted ranges, empty lists and implausible alignments are a <see cref="VfioException"/>)
/// and the IOMMU hardware info of <c>IOMMU_GET_HW_INFO</c> (any data type, capability bits and PASID width describe
/// themselves without throwing, and dirty tracking is exactly its capability bit).
/// </summary>
public sealed class IommuFdKernelBytesPropertyTests
{
    private delegate (IovaRange[] Ranges, ulong PageSizes) Parse(ReadOnlySpan<byte> ranges, ulong alignment, string name);

    // Internal to the backend: reached by reflection, as an InternalsVisibleTo would clash with the uAPI types this
    // test assembly compiles itself (LinkUapi).
    private static readonly Parse s_parse = typeof(IommuFdContainer)
        .GetMethod("ParseIovaRanges", BindingFlags.NonPublic | BindingFlags.Static)!.CreateDelegate<Parse>();

    [Fact]
    public Task IoasIovaRanges_Generated_RoundTripOrAreRefusedWithAVfioException() => Property.RunAsync("iommufd IOVA ranges", 151_007, random =>
    {
        int count = random.Next(0, 8);
        byte[] bytes = new byte[16 * count];
        var ranges = new (ulong Start, ulong Last)[count];
        bool inverted = false;
        for (int i = 0; i < count; i++)
        {
            ulong start = random.NextULong();
            ulong last = random.Next(4) == 0 ? random.NextULong() : start + Math.Min((ulong)random.Next(0, int.MaxValue), ulong.MaxValue - start);
            inverted |= last < start;
            ranges[i] = (start, last);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16 * i), start);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((16 * i) + 8), last);
        }
        ulong alignment = random.Next(3) switch
        {
            0 => 0,
            1 => 1UL << random.Next(0, 64),
            _ => random.NextULong() >> random.Next(64),
        };
        bool alignmentOk = alignment <= 1UL << 30 && (alignment & (alignment - 1)) == 0;
        (IovaRange[] Ranges, ulong PageSizes) parsed;
        try
        {
            parsed = s_parse(bytes, alignment, "generated");
        }
        catch (VfioException e)
        {
            (count == 0 || inverted || !alignmentOk).ShouldBeTrue($"valid ranges were refused: {e.Message}");
            e.Message.ShouldContain("generated");
            return;
        }
        (count > 0 && !inverted && alignmentOk).ShouldBeTrue("invalid ranges were accepted");
        parsed.Ranges.Select(r => (r.Start, r.Last)).ToArray().ShouldBe(ranges);
        parsed.PageSizes.ShouldBe(Math.Max(4096UL, alignment));
        ulong.IsPow2(parsed.PageSizes).ShouldBeTrue();
    });

    [Fact]
    public Task HardwareInfo_AnyReport_DescribesItself() => Property.RunAsync("IOMMU hardware info", 151_008, random =>
    {
        var info = new IommuHardwareInfo(random.Next(4) == 0 ? (uint)random.Next(0, 4) : random.NextUInt(), random.NextULong(), (byte)random.Next(256));
        info.SupportsDirtyTracking.ShouldBe((info.Capabilities & 1) != 0);
        info.DataTypeName.ShouldNotBeNullOrWhiteSpace();
        info.ToString().ShouldContain(info.DataTypeName);
    });
}
