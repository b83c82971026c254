// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Devices.Pci;

/// <summary>
/// One capability of a PCI device's configuration space, from the standard list (offsets 0x40–0xFF) or the PCI Express
/// extended list (0x100–0xFFF).
/// </summary>
/// <param name="Id">The capability id: a <see cref="PciCapabilityId"/> for the standard list, a
/// <see cref="PciExtendedCapabilityId"/> for the extended list (compare with <see cref="Is(PciCapabilityId)"/>).</param>
/// <param name="Offset">The offset of the capability's header in configuration space.</param>
/// <param name="Size">The bytes the capability may span: up to the next capability of its list at a higher offset,
/// or to the end of its space (0x100 for the standard list, the configuration space's end for the extended one). The
/// capability's own structure may be shorter; this is the bound no access to it should cross.</param>
/// <param name="IsExtended">True for the extended list.</param>
/// <param name="Version">The capability version of an extended capability (bits 19:16 of its header); 0 for the
/// standard list.</param>
public readonly record struct PciCapability(ushort Id, int Offset, int Size, bool IsExtended, byte Version)
{
    /// <summary>Whether this is the standard capability <paramref name="id"/>.</summary>
    /// <param name="id">The id.</param>
    /// <returns>True when it is.</returns>
    public bool Is(PciCapabilityId id) => !IsExtended && Id == (byte)id;

    /// <summary>Whether this is the extended capability <paramref name="id"/>.</summary>
    /// <param name="id">The id.</param>
    /// <returns>True when it is.</returns>
    public bool Is(PciExtendedCapabilityId id) => IsExtended && Id == (ushort)id;

    /// <inheritdoc/>
    public override string ToString()
    {
        string name = IsExtended
            ? (Enum.IsDefined((PciExtendedCapabilityId)Id) ? ((PciExtendedCapabilityId)Id).ToString() : "0x" + Id.ToString("X4", CultureInfo.InvariantCulture)) + " v" + Version.ToString(CultureInfo.InvariantCulture)
            : Id <= byte.MaxValue && Enum.IsDefined((PciCapabilityId)Id) ? ((PciCapabilityId)Id).ToString() : "0x" + Id.ToString("X2", CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture, $"{name} at 0x{Offset:X3} ({Size} bytes)");
    }
}
