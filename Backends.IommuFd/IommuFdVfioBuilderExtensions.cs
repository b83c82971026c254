// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Core;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the iommufd backend with <c>services.AddVfio(...)</c>.</summary>
public static class IommuFdVfioBuilderExtensions
{
    /// <summary>The iommufd backend's preference under <c>Vfio:Backend=auto</c> (above legacy's 10).</summary>
    public const int AutoPreference = 20;

    /// <summary>Adds the iommufd backend (<c>Vfio:Backend=iommufd</c>, and the first choice under <c>auto</c> when the device has a cdev): one
    /// <see cref="IommuFdBackend"/> per manager, built from its options, the kernel port and its fd store; the manager owns it.</summary>
    /// <param name="builder">The builder <c>AddVfio</c> returned.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder AddIommuFdBackend(this VfioBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.TryAddBackend(new IommuBackendDescriptor(IommuFdBackend.BackendName, AutoPreference,
            static context => new IommuFdBackend(context.Kernel, context.Options, context.FdStore, context.CreateLogger<IommuFdBackend>())));
    }
}
