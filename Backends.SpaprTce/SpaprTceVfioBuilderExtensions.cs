// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection.Extensions;
using Vfio.Backends.Legacy;
using Vfio.Backends.SpaprTce;
using Vfio.Core;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the sPAPR TCE backend with <c>services.AddVfio(...)</c>.</summary>
public static class SpaprTceVfioBuilderExtensions
{
    /// <summary>The sPAPR TCE backend's preference under <c>Vfio:Backend=auto</c>: below iommufd's 20, above legacy's
    /// 10, so a host whose container offers sPAPR TCE instead of Type1 gets it (it is unavailable elsewhere).</summary>
    public const int AutoPreference = 15;

    /// <summary>Adds the sPAPR TCE backend (<c>Vfio:Backend=spapr-tce</c>, and under <c>auto</c> on a POWER host): one
    /// <see cref="SpaprTceBackend"/> per manager, built from its options, the kernel port and its fd store; and the
    /// <see cref="SpaprTceIommuTypeHandler"/>, so that the legacy backend (<c>AddLegacyBackend()</c>) hands sPAPR
    /// containers to it as well. The manager owns the backend.</summary>
    /// <param name="builder">The builder <c>AddVfio</c> returned.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder AddSpaprTceBackend(this VfioBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<LegacyIommuTypeHandler, SpaprTceIommuTypeHandler>());
        return builder.TryAddBackend(new IommuBackendDescriptor(SpaprTceBackend.BackendName, AutoPreference,
            static context => new SpaprTceBackend(context.Kernel, context.Options, context.FdStore, context.CreateLogger<SpaprTceBackend>())));
    }
}
