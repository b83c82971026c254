// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>The configuration names of the backends and which package registers each.</summary>
internal static class VfioBackendNames
{
    internal const string Auto = "auto";
    internal const string Legacy = "legacy";
    internal const string IommuFd = "iommufd";
    internal const string SpaprTce = "spapr-tce";

    /// <summary>The values <see cref="VfioOptions.Backend"/> accepts, whatever is registered.</summary>
    internal static readonly string[] Known = [Auto, Legacy, IommuFd, SpaprTce];

    internal static bool IsAuto(string? name) => string.Equals(name, Auto, StringComparison.OrdinalIgnoreCase);

    internal static bool Is(string? name, string backend) => string.Equals(name, backend, StringComparison.OrdinalIgnoreCase);

    /// <summary>What to do to make <paramref name="backend"/> available: the package and the registration call.</summary>
    internal static string RegistrationHint(string backend) => backend.ToLowerInvariant() switch
    {
        Legacy => "Reference the Vfio.Backends.Legacy package and call AddLegacyBackend() on the VfioBuilder (services.AddVfio(...).AddLegacyBackend()).",
        IommuFd => "Reference the Vfio.Backends.IommuFd package and call AddIommuFdBackend() on the VfioBuilder (services.AddVfio(...).AddIommuFdBackend()).",
        SpaprTce => "Reference the Vfio.Backends.SpaprTce package and call AddSpaprTceBackend() on the VfioBuilder (services.AddVfio(...).AddSpaprTceBackend()).",
        _ => $"Register a backend named '{backend}' (the backend package's Add...Backend() call, or VfioBuilder.AddBackend), or set Vfio:Backend to a registered backend.",
    };
}
