// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core.Interop;

namespace Vfio.Backends.IommuFd;

/// <summary>
/// What <c>IOMMU_GET_HW_INFO</c> reported about the IOMMU behind a device bound to an iommufd: the driver data type,
/// the capability bits and the PASID width.
/// </summary>
/// <param name="DataType">The <c>IOMMU_HW_INFO_TYPE_*</c> of the driver data (<c>1</c> = Intel VT-d, <c>0</c> = none).</param>
/// <param name="Capabilities">The <c>IOMMU_HW_CAP_*</c> bits.</param>
/// <param name="MaxPasidLog2">The PASID width in bits; 0 when the IOMMU has no PASID support.</param>
public readonly record struct IommuHardwareInfo(uint DataType, ulong Capabilities, byte MaxPasidLog2)
{
    /// <summary>True when the IOMMU can track dirty pages (<c>IOMMU_HW_CAP_DIRTY_TRACKING</c>).</summary>
    public bool SupportsDirtyTracking => (Capabilities & IommuUapi.IOMMU_HW_CAP_DIRTY_TRACKING) != 0;

    /// <summary>The driver data type by name: <c>intel-vtd</c>, <c>none</c>, or the number.</summary>
    public string DataTypeName => DataType switch
    {
        IommuUapi.IOMMU_HW_INFO_TYPE_NONE => "none",
        IommuUapi.IOMMU_HW_INFO_TYPE_INTEL_VTD => "intel-vtd",
        _ => DataType.ToString(CultureInfo.InvariantCulture),
    };

    /// <inheritdoc/>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"{DataTypeName}, capabilities 0x{Capabilities:x}, PASID {MaxPasidLog2} bits");
}
