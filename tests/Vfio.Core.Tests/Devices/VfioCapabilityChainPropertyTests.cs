// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Diagnostics;
using Shouldly;

namespace Vfio.Core.Tests.Devices;

/// <summary>
/// Generated capability chains, well-formed and malformed (self-loops, cycles, backward and out-of-range next
/// pointers, truncated headers and buffers): the parser either returns a consistent list or throws a
/// <see cref="VfioException"/> that says what is wrong — never another exception, never a hang.
/// </summary>
/// <remarks>
/// Pure computation with a no-hang time bound: it runs in the host tier only (under TCG on a busy machine the
/// 12,000 parses took 26 s, beyond the bound, without any loop).
/// </remarks>
[Trait("Tier", "host")]
public sealed class VfioCapabilityChainPropertyTests
{
    private const int Fixed = 32;
    private const int Chains = 12_000;

    [Fact]
    public void Parse_GeneratedChains_ReturnConsistentListsOrAClearError()
    {
        var random = new Random(20261121);
        int parsed = 0, refused = 0;
        var kinds = new int[Enum.GetValues<Defect>().Length];
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < Chains; i++)
        {
            Defect defect = (Defect)random.Next(kinds.Length);
            kinds[(int)defect]++;
            (byte[] info, uint first) = Generate(random, defect);
            try
            {
                IReadOnlyList<VfioCapability> list = VfioCapabilityChain.Parse(info, Fixed, first, "VFIO_DEVICE_GET_INFO", "generated");
                parsed++;
                defect.ShouldNotBeOneOf([Defect.SelfLoop, Defect.Cycle, Defect.Backward, Defect.OutOfRange, Defect.TruncatedHeader, Defect.IntoFixed],
                    $"chain {i} ({defect}) was accepted");
                list.Count.ShouldBeLessThanOrEqualTo(VfioCapabilityChain.MaxCapabilities);
                for (int c = 0; c < list.Count; c++)
                {
                    list[c].Offset.ShouldBeGreaterThanOrEqualTo(Fixed);
                    (list[c].Offset + list[c].Bytes.Length).ShouldBeLessThanOrEqualTo(info.Length);
                    if (c > 0)
                    {
                        list[c].Offset.ShouldBeGreaterThan(list[c - 1].Offset);
                    }
                }
            }
            catch (VfioException e)
            {
                refused++;
                e.Operation.ShouldBe("VFIO_DEVICE_GET_INFO");
                e.Message.ShouldContain("generated");
                defect.ShouldNotBe(Defect.None, $"chain {i}: a well-formed chain was refused: {e.Message}");
            }
        }
        // Every defect class was exercised, and 12,000 parses take well under a second, so none looped.
        kinds.ShouldAllBe(k => k > 1000);
        parsed.ShouldBeGreaterThan(1000);
        refused.ShouldBeGreaterThan(5000);
        Stopwatch.GetElapsedTime(start).ShouldBeLessThan(TimeSpan.FromSeconds(20));
    }

    private enum Defect
    {
        None,
        SelfLoop,
        Cycle,
        Backward,
        OutOfRange,
        TruncatedHeader,
        IntoFixed,
        Garbage,
    }

    /// <summary>A chain of 1–8 capabilities laid out forward, then broken as <paramref name="defect"/> says.</summary>
    private static (byte[] Info, uint First) Generate(Random random, Defect defect)
    {
        int count = random.Next(1, 9);
        var offsets = new int[count];
        int offset = Fixed;
        for (int c = 0; c < count; c++)
        {
            offsets[c] = offset;
            offset += 8 + random.Next(0, 5) * 8;
        }
        byte[] info = new byte[offset];
        for (int c = 0; c < count; c++)
        {
            Span<byte> header = info.AsSpan(offsets[c]);
            BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)random.Next(1, 20));
            BinaryPrimitives.WriteUInt16LittleEndian(header[2..], 1);
            BinaryPrimitives.WriteUInt32LittleEndian(header[4..], c + 1 < count ? (uint)offsets[c + 1] : 0);
        }
        int victim = random.Next(count);
        Span<byte> next = info.AsSpan(offsets[victim] + 4, 4);
        switch (defect)
        {
            case Defect.SelfLoop:
                BinaryPrimitives.WriteUInt32LittleEndian(next, (uint)offsets[victim]);
                break;
            case Defect.Cycle:
                BinaryPrimitives.WriteUInt32LittleEndian(next, (uint)offsets[random.Next(victim + 1)]);
                break;
            case Defect.Backward:
                BinaryPrimitives.WriteUInt32LittleEndian(next, (uint)(offsets[victim] - random.Next(1, 8)));
                break;
            case Defect.OutOfRange:
                BinaryPrimitives.WriteUInt32LittleEndian(next, (uint)(info.Length + random.Next(0, 1 << 20)));
                break;
            case Defect.TruncatedHeader:
                // The last capability's header starts fewer than 8 bytes before the end of the buffer.
                int cut = offsets[count - 1] + random.Next(1, 8);
                info = info.AsSpan(0, cut).ToArray();
                break;
            case Defect.IntoFixed:
                return (info, (uint)random.Next(1, Fixed));
            case Defect.Garbage:
                // Random bytes after the fixed part: whatever they say, the parser must not crash or hang.
                random.NextBytes(info.AsSpan(Fixed));
                break;
        }
        return (info, (uint)offsets[0]);
    }
}
