// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Shouldly;
using Vfio.Tests.Shared;

namespace Vfio.Devices.Pci.Tests;

/// <summary>
/// Property test of the capability walker over generated configuration spaces (the bytes vfio-pci's config region
/// returns): standard and extended lists laid out at random offsets in random order, then half of them corrupted
/// (loops, pointers into the header or below 0x100, past the end, all-ones headers, flipped bytes, spaces cut short).
/// A valid list walks back to exactly what was generated; any input either walks to a consistent list or throws
/// <see cref="PciCapabilityListException"/> — never another exception (an out-of-range read included), never a hang.
/// </summary>
[Trait("Tier", "host")]   // pure computation: under TCG in the guest it would cost minutes
public sealed class PciCapabilityWalkerPropertyTests
{
    [Fact]
    public Task Walk_GeneratedConfigSpaces_RoundTripOrAreRefusedWithATypedError() => Property.RunAsync("PCI capability lists", 151_005, random =>
    {
        int size = random.Next(4) switch
        {
            0 => PciConfigRegister.StandardSize,
            1 => random.Next(0x40, PciConfigRegister.ExtendedSize + 1),
            _ => PciConfigRegister.ExtendedSize,
        };
        if (size is > PciConfigRegister.StandardSize and < PciConfigRegister.StandardSize + 4)
        {
            size = PciConfigRegister.StandardSize;   // a space cut inside the first extended header is a corruption, below
        }
        var image = new ConfigImage(size);
        var expected = new List<(ushort Id, int Offset, bool Extended)>();

        // Standard list: distinct dword offsets in 0x40..0xFC, in random order.
        int[] standard = Pick(random, 0x40, Math.Min(size - 2, 0xFC), random.Next(0, 12));
        if (standard.Length > 0 || random.Next(2) == 0)
        {
            image.StandardList(standard.Length > 0 ? standard[0] : 0);
            for (int i = 0; i < standard.Length; i++)
            {
                byte id = (byte)random.Next(1, 0x16);
                image.Bytes[standard[i]] = id;
                image.Bytes[standard[i] + 1] = (byte)(i + 1 < standard.Length ? standard[i + 1] | random.Next(4) : 0);   // low bits are reserved
                expected.Add((id, standard[i], false));
            }
        }
        // Extended list: at 0x100 first, then distinct dword offsets in 0x104..0xFFC.
        if (size >= PciConfigRegister.StandardSize + 4)
        {
            int[] extended = [PciConfigRegister.StandardSize, .. Pick(random, 0x104, Math.Min(size - 4, 0xFFC), random.Next(0, 10))];
            int count = random.Next(4) == 0 ? 0 : extended.Length;
            for (int i = 0; i < count; i++)
            {
                ushort id = (ushort)random.Next(1, 0x30);
                int version = random.Next(1, 16);
                image.Extended(extended[i], (PciExtendedCapabilityId)id, version, i + 1 < count ? extended[i + 1] : 0);
                expected.Add((id, extended[i], true));
            }
        }

        byte[] config = image.Bytes;
        bool corrupt = random.Next(2) == 0;
        if (corrupt)
        {
            config = Corrupt(random, config, expected);
        }
        PciCapability[] found;
        try
        {
            found = PciCapabilityWalker.Walk(config, "generated");
        }
        catch (PciCapabilityListException e)
        {
            corrupt.ShouldBeTrue($"a valid list was refused: {e.Message}");
            e.Message.ShouldContain("generated");
            return;
        }
        // Consistent whatever the input: each capability inside the space, in its part, sized to its part's end, once.
        found.Select(c => (c.Offset, c.IsExtended)).Distinct().Count().ShouldBe(found.Length);
        foreach (PciCapability capability in found)
        {
            capability.Offset.ShouldBeGreaterThanOrEqualTo(capability.IsExtended ? PciConfigRegister.StandardSize : 0x40);
            capability.Size.ShouldBeGreaterThan(0);
            (capability.Offset + capability.Size).ShouldBeLessThanOrEqualTo(capability.IsExtended ? config.Length : Math.Min(config.Length, PciConfigRegister.StandardSize));
        }
        if (!corrupt)
        {
            found.Select(c => (c.Id, c.Offset, c.IsExtended)).ToArray().ShouldBe([.. expected]);
        }
    });

    /// <summary>Up to <paramref name="count"/> distinct dword offsets from <paramref name="first"/> to
    /// <paramref name="last"/>, in random order (a partial Fisher–Yates shuffle).</summary>
    private static int[] Pick(Random random, int first, int last, int count)
    {
        int n = last < first ? 0 : ((last - first) / 4) + 1;
        int[] offsets = new int[n];
        for (int i = 0; i < n; i++)
        {
            offsets[i] = first + (4 * i);
        }
        count = Math.Min(count, n);
        for (int i = 0; i < count; i++)
        {
            int j = random.Next(i, n);
            (offsets[i], offsets[j]) = (offsets[j], offsets[i]);
        }
        return offsets[..count];
    }

    /// <summary>Breaks the image the way bad hardware or a hostile kernel could.</summary>
    private static byte[] Corrupt(Random random, byte[] config, List<(ushort Id, int Offset, bool Extended)> list)
    {
        byte[] copy = [.. config];
        (ushort _, int offset, bool extended) = list.Count > 0 ? list[random.Next(list.Count)] : ((ushort)0, 0x100, true);
        switch (random.Next(7))
        {
            case 0:   // a loop back to itself or an earlier capability
                int target = list.Where(c => c.Extended == extended && c.Offset <= offset).Select(c => c.Offset).DefaultIfEmpty(offset).ElementAt(0);
                SetNext(copy, offset, extended, target);
                break;
            case 1:   // into the header (standard) or below the extended space
                SetNext(copy, offset, extended, extended ? random.Next(0, 0x40) * 4 : random.Next(1, 0x10) * 4);
                break;
            case 2:   // an all-ones header
                if (extended && offset + 4 <= copy.Length)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(offset), uint.MaxValue);
                }
                break;
            case 3:   // cut short, possibly inside a header
                return copy[..random.Next(0x40, copy.Length + 1)];
            case 4:   // any next pointer
                SetNext(copy, offset, extended, random.Next(0, 0x1000));
                break;
            default:  // flipped bytes in the lists' area
                for (int n = random.Next(1, 8); n > 0; n--)
                {
                    copy[random.Next(0x06, copy.Length)] = (byte)random.Next(256);
                }
                break;
        }
        return copy;
    }

    private static void SetNext(byte[] config, int offset, bool extended, int next)
    {
        if (!extended && offset + 2 <= config.Length && offset >= 0x40)
        {
            config[offset + 1] = (byte)next;
        }
        else if (extended && offset + 4 <= config.Length)
        {
            uint header = BinaryPrimitives.ReadUInt32LittleEndian(config.AsSpan(offset));
            BinaryPrimitives.WriteUInt32LittleEndian(config.AsSpan(offset), (header & 0xFFFFF) | ((uint)(next & 0xFFF) << 20));
        }
    }
}
