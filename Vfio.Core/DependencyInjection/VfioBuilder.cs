// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection;

namespace Vfio.Core;

/// <summary>
/// What <c>services.AddVfio(...)</c> returns: the service collection, for backend packages to add themselves
/// (<c>.AddLegacyBackend()</c>, <c>.AddIommuFdBackend()</c>) by registering an <see cref="IommuBackendDescriptor"/>.
/// </summary>
public sealed class VfioBuilder
{
    internal VfioBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection VFIO was added to.</summary>
    public IServiceCollection Services { get; }
}
