// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Vfio.Backends.SpaprTce;

/// <summary>
/// The sPAPR TCE backend (<c>Vfio:Backend=spapr-tce</c>) of POWER hosts: the legacy backend's groups and containers
/// (<c>/dev/vfio/N</c>, <c>/dev/vfio/vfio</c>), with the container's IOMMU set to sPAPR TCE v2 (preferred) or v1 and
/// driven by <see cref="SpaprTceContainer"/>: DMA windows opened per section, memory pre-registration, EEH.
/// </summary>
/// <remarks>
/// <para>It never uses Type1 or no-IOMMU: on a host whose container offers Type1 it is unavailable (the legacy backend
/// is the one to use), and under <c>Vfio:Backend=auto</c> it is asked before the legacy backend, so a POWER host gets it
/// and the log says why (the container offers sPAPR TCE instead of Type1).</para>
/// <para>The legacy backend reaches the same containers through <see cref="SpaprTceIommuTypeHandler"/> when it is
/// registered (<c>AddSpaprTceBackend()</c> registers both).</para>
/// </remarks>
public sealed class SpaprTceBackend : LegacyBackend
{
    /// <summary>The backend's configuration name.</summary>
    public new const string BackendName = "spapr-tce";

    /// <summary>Creates the backend.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="options">The configuration (passed container and group fds); null for defaults.</param>
    /// <param name="fdStore">Where named passed fds are looked up; null when only inherited fd numbers are used.</param>
    /// <param name="logger">Where attaches, detaches, windows and warnings are logged; null for none.</param>
    public SpaprTceBackend(IKernel kernel, VfioOptions? options = null, VfioFdStore? fdStore = null, ILogger? logger = null)
        : base(kernel, options, fdStore, logger, [new SpaprTceIommuTypeHandler()], handledTypesOnly: true)
    {
    }

    /// <inheritdoc/>
    public override string Name => BackendName;

    /// <inheritdoc/>
    public override IommuBackendFeatures Features
        => IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.PassedFds | IommuBackendFeatures.DmaWindows
        | IommuBackendFeatures.MemoryPreRegistration | IommuBackendFeatures.Eeh;
}
