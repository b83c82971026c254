// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Reflection;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Tests.Shared;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>
/// Property test of the Type1 IOVA range capability decoder (<c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c> of
/// <c>VFIO_IOMMU_GET_INFO</c>): generated capabilities, valid (decoded back to the generated ranges) and corrupted
/// (huge or zero counts, truncation, inverted ranges, flipped bytes), never another exception than
/// <see cref="VfioException"/>.
/// </summary>
public sealed class IovaRangePropertyTests
{
    private delegate IReadOnlyList<IovaRange> Parse(ReadOnlySpan<byte> cap, string name);

    // Internal to the backend: reached by reflection, as an InternalsVisibleTo would clash with the uAPI types this
    // test assembly compiles itself (LinkUapi).
    private static readonly Parse s_parse = typeof(LegacyContainer)
        .GetMethod("ParseIovaRanges", BindingFlags.NonPublic | BindingFlags.Static)!.CreateDelegate<Parse>();

    [Fact]
    public Task IovaRangeCapability_Generated_RoundTripsOrIsRefusedWithAVfioException() => Property.RunAsync("Type1 IOVA ranges", 151_006, random =>
    {
        int count = random.Next(1, 8);
        var ranges = new (ulong Start, ulong End)[count];
        ulong at = (ulong)random.Next(0, 1 << 20) << 12;
        for (int i = 0; i < count; i++)
        {
            ulong start = at + ((ulong)random.Next(0, 1 << 16) << 12);
            ulong end = i == count - 1 && random.Next(8) == 0 ? ulong.MaxValue : start + ((ulong)random.Next(1, 1 << 20) << 12) - 1;
            ranges[i] = (start, end);
            at = end + 1;
        }
        int first = vfio_iommu_type1_info_cap_iova_range.iova_ranges_offset;
        byte[] cap = new byte[first + (16 * count)];
        BinaryPrimitives.WriteUInt16LittleEndian(cap, VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
        BinaryPrimitives.WriteUInt32LittleEndian(cap.AsSpan(8), (uint)count);
        for (int i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(cap.AsSpan(first + (16 * i)), ranges[i].Start);
            BinaryPrimitives.WriteUInt64LittleEndian(cap.AsSpan(first + (16 * i) + 8), ranges[i].End);
        }
        bool corrupt = random.Next(2) == 0;
        if (corrupt)
        {
            switch (random.Next(4))
            {
                case 0:
                    BinaryPrimitives.WriteUInt32LittleEndian(cap.AsSpan(8), random.Interesting());
                    break;
                case 1:
                    cap = cap[..random.Next(cap.Length)];
                    break;
                case 2:
                    int i = random.Next(count);
                    BinaryPrimitives.WriteUInt64LittleEndian(cap.AsSpan(first + (16 * i) + 8), ranges[i].Start - (ulong)random.Next(1, 100));
                    break;
                default:
                    cap[random.Next(cap.Length)] = (byte)random.Next(256);
                    break;
            }
        }
        IReadOnlyList<IovaRange> parsed;
        try
        {
            parsed = s_parse(cap, "generated");
        }
        catch (VfioException e)
        {
            corrupt.ShouldBeTrue($"a valid capability was refused: {e.Message}");
            e.Message.ShouldContain("generated");
            return;
        }
        parsed.ShouldNotBeEmpty();
        parsed.Count.ShouldBeLessThanOrEqualTo((cap.Length - first) / 16);
        parsed.ShouldAllBe(r => r.Start <= r.Last);
        if (!corrupt)
        {
            parsed.Select(r => (r.Start, r.Last)).ToArray().ShouldBe(ranges);
        }
    });
}
