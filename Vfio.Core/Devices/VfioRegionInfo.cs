// SPDX-License-Identifier: MIT
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>The flags of a region (<c>VFIO_REGION_INFO_FLAG_*</c>).</summary>
[Flags]
public enum VfioRegionFlags : uint
{
    /// <summary>No flag: the region is absent (e.g. an unimplemented BAR).</summary>
    None = 0,

    /// <summary><c>VFIO_REGION_INFO_FLAG_READ</c>: the region can be read (pread, and a readable mapping).</summary>
    Read = VfioUapi.VFIO_REGION_INFO_FLAG_READ,

    /// <summary><c>VFIO_REGION_INFO_FLAG_WRITE</c>: the region can be written.</summary>
    Write = VfioUapi.VFIO_REGION_INFO_FLAG_WRITE,

    /// <summary><c>VFIO_REGION_INFO_FLAG_MMAP</c>: the region, or the areas of its sparse mmap capability, can be
    /// mapped.</summary>
    Mmap = VfioUapi.VFIO_REGION_INFO_FLAG_MMAP,

    /// <summary><c>VFIO_REGION_INFO_FLAG_CAPS</c>: the info carries a capability chain.</summary>
    Capabilities = VfioUapi.VFIO_REGION_INFO_FLAG_CAPS,
}

/// <summary>An mmap-able part of a region (an element of <c>VFIO_REGION_INFO_CAP_SPARSE_MMAP</c>).</summary>
/// <param name="Offset">The area's offset within the region.</param>
/// <param name="Size">The area's size in bytes.</param>
public readonly record struct VfioSparseMmapArea(ulong Offset, ulong Size);

/// <summary>The type of a device-specific region (<c>VFIO_REGION_INFO_CAP_TYPE</c>).</summary>
/// <param name="Type">A <c>VFIO_REGION_TYPE_*</c> value, or <c>VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor id</c>.</param>
/// <param name="Subtype">A <c>VFIO_REGION_SUBTYPE_*</c> value, meaningful per <paramref name="Type"/>.</param>
public readonly record struct VfioRegionType(uint Type, uint Subtype)
{
    /// <summary>Whether <see cref="Type"/> is a PCI vendor-specific type.</summary>
    public bool IsPciVendorType => (Type & VfioUapi.VFIO_REGION_TYPE_PCI_VENDOR_TYPE) != 0;

    /// <summary>The PCI vendor id of a vendor-specific type, or null.</summary>
    public ushort? PciVendorId => IsPciVendorType ? (ushort)(Type & VfioUapi.VFIO_REGION_TYPE_PCI_VENDOR_MASK) : null;
}

/// <summary>What <c>VFIO_DEVICE_GET_REGION_INFO</c> says about one region of a device, capabilities parsed.</summary>
public sealed class VfioRegionInfo
{
    internal VfioRegionInfo(int index, VfioRegionFlags flags, ulong size, ulong offset, IReadOnlyList<VfioCapability> capabilities,
        IReadOnlyList<VfioSparseMmapArea>? sparseMmapAreas, VfioRegionType? type, bool isMsixMappable)
    {
        Index = index;
        Flags = flags;
        Size = size;
        Offset = offset;
        Capabilities = capabilities;
        SparseMmapAreas = sparseMmapAreas;
        Type = type;
        IsMsixMappable = isMsixMappable;
    }

    /// <summary>The region index (for vfio-pci: BAR0–5 are 0–5, ROM 6, config 7, VGA 8, device-specific from 9).</summary>
    public int Index { get; }

    /// <summary>The region flags as the kernel reported them.</summary>
    public VfioRegionFlags Flags { get; }

    /// <summary>The region's size in bytes (0 when the region is absent).</summary>
    public ulong Size { get; }

    /// <summary>The device fd offset of the region, for pread/pwrite/mmap (vfio-pci: <c>index &lt;&lt; 40</c>).</summary>
    public ulong Offset { get; }

    /// <summary>Whether the region can be read.</summary>
    public bool CanRead => (Flags & VfioRegionFlags.Read) != 0;

    /// <summary>Whether the region can be written.</summary>
    public bool CanWrite => (Flags & VfioRegionFlags.Write) != 0;

    /// <summary>Whether the region (or its sparse areas) can be mapped.</summary>
    public bool CanMmap => (Flags & VfioRegionFlags.Mmap) != 0;

    /// <summary>The region-info capability chain, in chain order (empty when there is none).</summary>
    public IReadOnlyList<VfioCapability> Capabilities { get; }

    /// <summary>The areas of <c>VFIO_REGION_INFO_CAP_SPARSE_MMAP</c> (only these may be mapped), or null when the
    /// capability is absent and the whole region may be mapped.</summary>
    public IReadOnlyList<VfioSparseMmapArea>? SparseMmapAreas { get; }

    /// <summary>The region type from <c>VFIO_REGION_INFO_CAP_TYPE</c>, or null when the capability is absent.</summary>
    public VfioRegionType? Type { get; }

    /// <summary>Whether <c>VFIO_REGION_INFO_CAP_MSIX_MAPPABLE</c> is present: the MSI-X table in this BAR may be
    /// mapped along with the rest of it.</summary>
    public bool IsMsixMappable { get; }

    /// <inheritdoc/>
    public override string ToString() => $"region {Index}: 0x{Size:X} bytes at 0x{Offset:X}, flags {Flags}";
}
