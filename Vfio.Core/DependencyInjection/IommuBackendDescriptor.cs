// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// How a backend package registers itself with <see cref="VfioServiceCollectionExtensions.AddVfio(Microsoft.Extensions.DependencyInjection.IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration)"/>:
/// its configuration name, its rank under <c>Backend=auto</c>, and how to create it.
/// </summary>
/// <param name="Name">The backend's configuration name, as <see cref="IIommuBackend.Name"/>: <c>legacy</c>,
/// <c>iommufd</c> or <c>spapr-tce</c>.</param>
/// <param name="Preference">Its rank under <c>auto</c>: higher is asked first (iommufd 20, legacy 10).</param>
/// <param name="Factory">Creates the backend from the container; called once, by <see cref="VfioManager"/>, which
/// then owns the backend.</param>
/// <example>
/// <code>
/// builder.Services.AddSingleton(new IommuBackendDescriptor("iommufd", 20,
///     sp => new IommuFdBackend(sp.GetRequiredService&lt;IKernel&gt;(), ...)));
/// </code>
/// </example>
public sealed record IommuBackendDescriptor(string Name, int Preference, Func<IServiceProvider, IIommuBackend> Factory);
