// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Vfio.Core;

namespace Vfio.Backends.Legacy;

/// <summary>Registers the legacy backend with <c>services.AddVfio(...)</c>.</summary>
public static class LegacyVfioBuilderExtensions
{
    /// <summary>The legacy backend's preference under <c>Vfio:Backend=auto</c> (below iommufd's 20).</summary>
    public const int AutoPreference = 10;

    /// <summary>Adds the legacy backend (<c>Vfio:Backend=legacy</c>, and the fallback under <c>auto</c>): one
    /// <see cref="LegacyBackend"/> per service provider, built from the registered kernel, options and fd store, and
    /// the registered <see cref="LegacyIommuTypeHandler"/>s (a package for another container IOMMU type, such as
    /// sPAPR TCE, registers its handler).</summary>
    /// <param name="builder">The builder <c>AddVfio</c> returned.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder AddLegacyBackend(this VfioBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.Services.Any(d => d.ServiceType == typeof(LegacyBackend)))
        {
            return builder;
        }
        builder.Services.TryAddSingleton(sp => new LegacyBackend(
            sp.GetRequiredService<IKernel>(),
            sp.GetRequiredService<IOptions<VfioOptions>>().Value,
            sp.GetRequiredService<VfioFdStore>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<LegacyBackend>(),
            sp.GetServices<LegacyIommuTypeHandler>()));
        builder.Services.AddSingleton(new IommuBackendDescriptor("legacy", AutoPreference, sp => sp.GetRequiredService<LegacyBackend>()));
        return builder;
    }
}
