// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Vfio.Cli;

/// <summary>The backends vfioctl offers (<c>--backend auto|legacy|iommufd|spapr-tce</c>) over one kernel, and the
/// manager that selects among them as the library does for any host.</summary>
internal sealed class CliBackends : IDisposable
{
    internal static readonly string[] Names = ["auto", "legacy", "iommufd", "spapr-tce"];

    private readonly LegacyBackend _legacy;
    private readonly IommuFdBackend _iommuFd;

    private CliBackends(IKernel kernel, VfioOptions options)
    {
        _legacy = new LegacyBackend(kernel, options);
        _iommuFd = new IommuFdBackend(kernel, options);
        // Most preferred first, as AddIommuFdBackend/AddLegacyBackend rank them under auto.
        Manager = new VfioManager(options, [_iommuFd, _legacy]);
    }

    public VfioManager Manager { get; }

    /// <summary>Both backends, for "which backends could attach it".</summary>
    public IReadOnlyList<IIommuBackend> All => [_legacy, _iommuFd];

    /// <summary>Creates the backends with <paramref name="backend"/> selected.</summary>
    /// <exception cref="VfioBackendUnavailableException">spapr-tce: this build has no sPAPR TCE backend.</exception>
    /// <param name="kernel">The kernel.</param>
    /// <param name="backend">auto, legacy, iommufd or spapr-tce.</param>
    /// <param name="allowUnsafeNoIommu">Whether no-IOMMU groups may be attached (<c>--allow-unsafe-noiommu</c>).</param>
    public static CliBackends Create(IKernel kernel, string backend = "auto", bool allowUnsafeNoIommu = false)
    {
        if (backend == "spapr-tce")
        {
            throw new VfioBackendUnavailableException(backend,
                "the sPAPR TCE backend, which this vfioctl does not include (the Vfio.Backends.SpaprTce package is not part of this build)",
                hint: "Use --backend legacy or --backend iommufd (or auto) on this machine.");
        }
        return new CliBackends(kernel, new VfioOptions { Backend = backend, AllowUnsafeNoIommu = allowUnsafeNoIommu });
    }

    public void Dispose()
    {
        Manager.Dispose();
        _iommuFd.Dispose();
        _legacy.Dispose();
    }
}
