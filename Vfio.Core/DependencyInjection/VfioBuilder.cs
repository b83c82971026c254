// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection;

namespace Vfio.Core;

/// <summary>
/// What <c>services.AddVfio(...)</c> returns: the service collection and the name of the <see cref="VfioManager"/>
/// being configured, for backend packages to add themselves (<c>.AddLegacyBackend()</c>, <c>.AddIommuFdBackend()</c>)
/// through <see cref="AddBackend"/>.
/// </summary>
public sealed class VfioBuilder
{
    internal VfioBuilder(IServiceCollection services, string name)
    {
        Services = services;
        Name = name;
    }

    /// <summary>The service collection VFIO was added to.</summary>
    public IServiceCollection Services { get; }

    /// <summary>The manager's name: empty for the default <see cref="VfioManager"/> service, else the service key of a
    /// keyed manager (<c>AddVfio(name, ...)</c>, resolved with <c>GetRequiredKeyedService&lt;VfioManager&gt;(name)</c>).</summary>
    public string Name { get; }

    /// <summary>
    /// Registers a backend for this builder's manager. A second registration of the same name replaces the first;
    /// the manager creates each backend once, owns it and disposes it after its DMA spaces.
    /// </summary>
    /// <param name="descriptor">The backend's name, preference under <c>auto</c> and factory.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">The descriptor has no name or no factory.</exception>
    public VfioBuilder AddBackend(IommuBackendDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentException.ThrowIfNullOrWhiteSpace(descriptor.Name, nameof(descriptor));
        ArgumentNullException.ThrowIfNull(descriptor.Factory, nameof(descriptor));
        Services.AddSingleton(new VfioBackendRegistration(Name, descriptor));
        return this;
    }

    /// <summary>Registers a backend for this builder's manager unless one of the same name already is: what a backend
    /// package's <c>Add...Backend()</c> calls, so calling it twice is harmless.</summary>
    /// <param name="descriptor">The backend's name, preference under <c>auto</c> and factory.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">The descriptor has no name or no factory.</exception>
    public VfioBuilder TryAddBackend(IommuBackendDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return HasBackend(descriptor.Name) ? this : AddBackend(descriptor);
    }

    /// <summary>Whether a backend of <paramref name="backendName"/> is already registered for this manager.</summary>
    /// <param name="backendName">The backend's configuration name.</param>
    /// <returns>True when <see cref="AddBackend"/> was called with that name.</returns>
    public bool HasBackend(string backendName)
        => Services.Any(d => d.ImplementationInstance is VfioBackendRegistration r && r.Manager == Name
            && string.Equals(r.Descriptor.Name, backendName, StringComparison.OrdinalIgnoreCase));
}
