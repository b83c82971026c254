// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// How a backend package registers itself with a <see cref="VfioBuilder"/> (<see cref="VfioBuilder.AddBackend"/>): its
/// configuration name, its rank under <c>Backend=auto</c>, and how to create it for one <see cref="VfioManager"/>.
/// </summary>
/// <param name="Name">The backend's configuration name, as <see cref="IIommuBackend.Name"/>: <c>legacy</c>,
/// <c>iommufd</c> or <c>spapr-tce</c>.</param>
/// <param name="Preference">Its rank under <c>auto</c>: higher is asked first (iommufd 20, legacy 10).</param>
/// <param name="Factory">Creates the backend for a manager; called once per manager, which then owns the backend
/// and disposes it after its DMA spaces.</param>
/// <example>
/// <code>
/// builder.AddBackend(new IommuBackendDescriptor("iommufd", 20,
///     context => new IommuFdBackend(context.Kernel, context.Options, context.FdStore, context.CreateLogger&lt;IommuFdBackend&gt;())));
/// </code>
/// </example>
public sealed record IommuBackendDescriptor(string Name, int Preference, Func<VfioBackendContext, IIommuBackend> Factory);
