// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Globalization;

namespace Vfio.Devices.Pci;

/// <summary>
/// Walks the capability lists of a PCI configuration space image: the standard list (from the capabilities pointer at
/// 0x34, when the status register says there is one) and the PCI Express extended list (from 0x100, when the image is
/// longer than 256 bytes). Loop-safe: every capability is visited at most once, and a list that comes back, points
/// out of its space or is cut short is a <see cref="PciCapabilityListException"/>.
/// </summary>
/// <remarks>
/// Pointers are read as the PCI specification says: the low two bits of a standard pointer and of an extended
/// "next" field are reserved and masked off. An extended list whose first header reads 0 or all-ones is absent
/// (conventional PCI behind a PCIe bridge, or a device without extended capabilities). A capability's size is the
/// distance to the next capability of its list at a higher offset, or to the end of its space, as QEMU sizes the
/// capabilities it passes through.
/// </remarks>
public static class PciCapabilityWalker
{
    private const int StandardListStart = 0x40;

    /// <summary>Walks both lists of <paramref name="config"/>.</summary>
    /// <param name="config">The configuration space from offset 0: at least the 64-byte header; 256 bytes for the
    /// standard list, up to 4096 for the extended list.</param>
    /// <param name="deviceName">The device, for the error message.</param>
    /// <returns>The standard capabilities in list order, then the extended ones in list order.</returns>
    /// <exception cref="ArgumentException"><paramref name="config"/> is shorter than the 64-byte header.</exception>
    /// <exception cref="PciCapabilityListException">A list loops, points out of its space or is cut short.</exception>
    public static PciCapability[] Walk(ReadOnlySpan<byte> config, string deviceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(deviceName);
        if (config.Length < StandardListStart)
        {
            throw new ArgumentException($"The configuration space of {deviceName} needs at least the {StandardListStart}-byte header to be walked; {config.Length} bytes were given.", nameof(config));
        }
        var found = new List<PciCapability>();
        WalkStandard(config, deviceName, found);
        int standardCount = found.Count;
        WalkExtended(config, deviceName, found);
        var result = found.ToArray();
        Size(result.AsSpan(0, standardCount), Math.Min(config.Length, PciConfigRegister.StandardSize));
        Size(result.AsSpan(standardCount), config.Length);
        return result;
    }

    private static void WalkStandard(ReadOnlySpan<byte> config, string deviceName, List<PciCapability> found)
    {
        var status = (PciStatus)BinaryPrimitives.ReadUInt16LittleEndian(config[PciConfigRegister.Status..]);
        if ((status & PciStatus.CapabilitiesList) == 0)
        {
            return;
        }
        Span<ulong> visited = stackalloc ulong[1]; // one bit per dword of 0x40..0xFF
        int pointer = config[PciConfigRegister.CapabilitiesPointer] & 0xFC;
        int from = PciConfigRegister.CapabilitiesPointer;
        while (pointer != 0)
        {
            if (pointer < StandardListStart)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.PointerOutOfRange, isExtended: false, pointer,
                    Text($"the standard capability list points from 0x{from:X2} to 0x{pointer:X2}, inside the configuration header (capabilities live at 0x40–0xFF)"));
            }
            if (pointer + 2 > config.Length)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Truncated, isExtended: false, pointer,
                    Text($"the standard capability list points from 0x{from:X2} to 0x{pointer:X2}, past the {config.Length} bytes of configuration space"));
            }
            int bit = (pointer - StandardListStart) >> 2;
            if ((visited[0] & (1UL << bit)) != 0)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Loop, isExtended: false, pointer,
                    Text($"the standard capability list loops: 0x{from:X2} points back to the capability at 0x{pointer:X2}"));
            }
            visited[0] |= 1UL << bit;
            found.Add(new PciCapability(config[pointer], pointer, 0, IsExtended: false, Version: 0));
            from = pointer;
            pointer = config[pointer + 1] & 0xFC;
        }
    }

    private static void WalkExtended(ReadOnlySpan<byte> config, string deviceName, List<PciCapability> found)
    {
        if (config.Length <= PciConfigRegister.StandardSize)
        {
            return;
        }
        if (config.Length < PciConfigRegister.StandardSize + 4)
        {
            throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Truncated, isExtended: true, PciConfigRegister.StandardSize,
                Text($"the configuration space ends at 0x{config.Length:X3}, inside the first extended capability header"));
        }
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(config[PciConfigRegister.StandardSize..]);
        if (first is 0 or uint.MaxValue)
        {
            return;
        }
        Span<ulong> visited = stackalloc ulong[(PciConfigRegister.ExtendedSize - PciConfigRegister.StandardSize) / 4 / 64];
        int pointer = PciConfigRegister.StandardSize;
        int from = PciConfigRegister.StandardSize;
        while (pointer != 0)
        {
            if (pointer < PciConfigRegister.StandardSize)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.PointerOutOfRange, isExtended: true, pointer,
                    Text($"the extended capability at 0x{from:X3} points to 0x{pointer:X3}, below the extended space (0x100–0xFFF)"));
            }
            if (pointer + 4 > config.Length)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Truncated, isExtended: true, pointer,
                    Text($"the extended capability at 0x{from:X3} points to 0x{pointer:X3}, past the {config.Length} bytes of configuration space"));
            }
            int bit = (pointer - PciConfigRegister.StandardSize) >> 2;
            if ((visited[bit >> 6] & (1UL << (bit & 63))) != 0)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Loop, isExtended: true, pointer,
                    Text($"the extended capability list loops: 0x{from:X3} points back to the capability at 0x{pointer:X3}"));
            }
            visited[bit >> 6] |= 1UL << (bit & 63);
            uint header = BinaryPrimitives.ReadUInt32LittleEndian(config[pointer..]);
            if (header == uint.MaxValue)
            {
                throw new PciCapabilityListException(deviceName, PciCapabilityListFault.Truncated, isExtended: true, pointer,
                    Text($"the extended capability at 0x{from:X3} points to 0x{pointer:X3}, which reads as all-ones (the extended space ends before it)"));
            }
            if (header == 0)
            {
                return;
            }
            found.Add(new PciCapability((ushort)header, pointer, 0, IsExtended: true, Version: (byte)((header >> 16) & 0xF)));
            from = pointer;
            pointer = (int)(header >> 20) & 0xFFC;
        }
    }

    /// <summary>Sets each capability's size: up to the next one of its list at a higher offset, or <paramref name="end"/>.</summary>
    private static void Size(Span<PciCapability> list, int end)
    {
        for (int i = 0; i < list.Length; i++)
        {
            int next = end;
            foreach (PciCapability other in list)
            {
                if (other.Offset > list[i].Offset && other.Offset < next)
                {
                    next = other.Offset;
                }
            }
            list[i] = list[i] with { Size = next - list[i].Offset };
        }
    }

    private static string Text(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
