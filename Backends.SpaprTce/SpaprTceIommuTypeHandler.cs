// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.SpaprTce;

/// <summary>
/// Hands legacy containers whose host offers sPAPR TCE (and no Type1) to <see cref="SpaprTceContainer"/>: v2
/// (<c>VFIO_SPAPR_TCE_v2_IOMMU</c>) first, v1 (<c>VFIO_SPAPR_TCE_IOMMU</c>) as the fallback. Registered by
/// <c>AddSpaprTceBackend()</c> so that <c>Vfio:Backend=legacy</c> works on a POWER host too; without DI, pass it to the
/// <see cref="LegacyBackend"/> constructor.
/// </summary>
public sealed class SpaprTceIommuTypeHandler : LegacyIommuTypeHandler
{
    /// <inheritdoc/>
    public override string Name => SpaprTceBackend.BackendName;

    /// <inheritdoc/>
    public override IReadOnlyList<uint> IommuTypes { get; } = [VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU, VfioUapi.VFIO_SPAPR_TCE_IOMMU];

    /// <inheritdoc/>
    public override LegacyContainer CreateContainer(LegacyBackend backend, DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (iommuType != VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU && iommuType != VfioUapi.VFIO_SPAPR_TCE_IOMMU)
        {
            throw new ArgumentOutOfRangeException(nameof(iommuType), iommuType, "The sPAPR TCE handler drives IOMMU types 7 (v2) and 2 (v1) only.");
        }
        return new SpaprTceContainer(backend, space, containerFd, ownsContainerFd, iommuType);
    }
}
