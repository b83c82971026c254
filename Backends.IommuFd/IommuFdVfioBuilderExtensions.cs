// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Vfio.Core;

namespace Vfio.Backends.IommuFd;

/// <summary>Registers the iommufd backend with <c>services.AddVfio(...)</c>.</summary>
public static class IommuFdVfioBuilderExtensions
{
    /// <summary>The iommufd backend's preference under <c>Vfio:Backend=auto</c> (above legacy's 10).</summary>
    public const int AutoPreference = 20;

    /// <summary>Adds the iommufd backend (<c>Vfio:Backend=iommufd</c>, and the first choice under <c>auto</c> when the device has a cdev): one
    /// <see cref="IommuFdBackend"/> per service provider, built from the registered kernel, options and fd store.</summary>
    /// <param name="builder">The builder <c>AddVfio</c> returned.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder AddIommuFdBackend(this VfioBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.Services.Any(d => d.ServiceType == typeof(IommuFdBackend)))
        {
            return builder;
        }
        builder.Services.TryAddSingleton(sp => new IommuFdBackend(
            sp.GetRequiredService<IKernel>(),
            sp.GetRequiredService<IOptions<VfioOptions>>().Value,
            sp.GetRequiredService<VfioFdStore>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<IommuFdBackend>()));
        builder.Services.AddSingleton(new IommuBackendDescriptor("iommufd", AutoPreference, sp => sp.GetRequiredService<IommuFdBackend>()));
        return builder;
    }
}
