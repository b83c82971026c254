// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The region indexes vfio-pci gives every PCI device (<c>VFIO_PCI_*_REGION_INDEX</c> of <c>linux/vfio.h</c>), for
/// <see cref="VfioDevice.GetRegion(int)"/>, <see cref="VfioDevice.MapRegion(int)"/>
/// and the region reads and writes. A device-specific region (a GPU's, a migration region) has an index at or above
/// <see cref="DeviceSpecific"/>, found by its type in <see cref="VfioRegionInfo.Type"/>.
/// </summary>
public static class VfioPciRegion
{
    /// <summary>BAR 0 (<c>VFIO_PCI_BAR0_REGION_INDEX</c>).</summary>
    public const int Bar0 = 0;

    /// <summary>BAR 1.</summary>
    public const int Bar1 = 1;

    /// <summary>BAR 2.</summary>
    public const int Bar2 = 2;

    /// <summary>BAR 3.</summary>
    public const int Bar3 = 3;

    /// <summary>BAR 4.</summary>
    public const int Bar4 = 4;

    /// <summary>BAR 5 (<c>VFIO_PCI_BAR5_REGION_INDEX</c>).</summary>
    public const int Bar5 = 5;

    /// <summary>The expansion ROM (<c>VFIO_PCI_ROM_REGION_INDEX</c>).</summary>
    public const int Rom = 6;

    /// <summary>The configuration space (<c>VFIO_PCI_CONFIG_REGION_INDEX</c>), read and written through the device fd.</summary>
    public const int Config = 7;

    /// <summary>The legacy VGA ranges of a VGA device (<c>VFIO_PCI_VGA_REGION_INDEX</c>).</summary>
    public const int Vga = 8;

    /// <summary>The first index of the device-specific regions (<c>VFIO_PCI_NUM_REGIONS</c>).</summary>
    public const int DeviceSpecific = 9;
}
