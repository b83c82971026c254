// SPDX-License-Identifier: MIT
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the legacy backend with <c>services.AddVfio(...)</c>.</summary>
public static class LegacyVfioBuilderExtensions
{
    /// <summary>The legacy backend's preference under <c>Vfio:Backend=auto</c> (below iommufd's 20).</summary>
    public const int AutoPreference = 10;

    /// <summary>Adds the legacy backend (<c>Vfio:Backend=legacy</c>, and the fallback under <c>auto</c>): one
    /// <see cref="LegacyBackend"/> per manager, built from its options, the kernel port and its fd store, with the
    /// <see cref="LegacyIommuTypeHandler"/>s registered in the service provider (a package for another container IOMMU
    /// type, such as sPAPR TCE, registers its handler); the manager owns it.</summary>
    /// <param name="builder">The builder <c>AddVfio</c> returned.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder AddLegacyBackend(this VfioBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.TryAddBackend(new IommuBackendDescriptor(LegacyBackend.BackendName, AutoPreference,
            static context => new LegacyBackend(context.Kernel, context.Options, context.FdStore, context.CreateLogger<LegacyBackend>(),
                context.Services?.GetServices<LegacyIommuTypeHandler>())));
    }
}
