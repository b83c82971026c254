// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Devices.Pci.Tests;

/// <summary>A configuration space image a test builds capability by capability.</summary>
internal sealed class ConfigImage
{
    internal ConfigImage(int size = PciConfigRegister.ExtendedSize) => Bytes = new byte[size];

    internal byte[] Bytes { get; }

    /// <summary>Sets the status register's capability-list bit and the capabilities pointer.</summary>
    internal ConfigImage StandardList(int first)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Bytes.AsSpan(PciConfigRegister.Status), (ushort)PciStatus.CapabilitiesList);
        Bytes[PciConfigRegister.CapabilitiesPointer] = (byte)first;
        return this;
    }

    internal ConfigImage Standard(int offset, PciCapabilityId id, int next)
    {
        Bytes[offset] = (byte)id;
        Bytes[offset + 1] = (byte)next;
        return this;
    }

    internal ConfigImage Extended(int offset, PciExtendedCapabilityId id, int version, int next)
        => ExtendedHeader(offset, (uint)id | ((uint)version << 16) | ((uint)next << 20));

    internal ConfigImage ExtendedHeader(int offset, uint header)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(Bytes.AsSpan(offset), header);
        return this;
    }
}
