// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Backends.SpaprTce;
using Vfio.Core;

namespace Vfio.Cli;

/// <summary>The backends vfioctl offers (<c>--backend auto|legacy|iommufd|spapr-tce</c>) over one kernel, and the
/// manager that selects among them as the library does for any host.</summary>
internal sealed class CliBackends : IDisposable
{
    internal static readonly string[] Names = ["auto", "legacy", "iommufd", "spapr-tce"];

    private readonly LegacyBackend _legacy;
    private readonly IommuFdBackend _iommuFd;
    private readonly SpaprTceBackend _spapr;

    private CliBackends(IKernel kernel, VfioOptions options)
    {
        // The legacy backend hands sPAPR containers to the sPAPR TCE handler, as AddSpaprTceBackend() registers it.
        _legacy = new LegacyBackend(kernel, options, iommuTypeHandlers: [new SpaprTceIommuTypeHandler()]);
        _iommuFd = new IommuFdBackend(kernel, options);
        _spapr = new SpaprTceBackend(kernel, options);
        // Most preferred first, as AddIommuFdBackend/AddSpaprTceBackend/AddLegacyBackend rank them under auto.
        Manager = new VfioManager(options, [_iommuFd, _spapr, _legacy]);
    }

    public VfioManager Manager { get; }

    /// <summary>Every backend, for "which backends could attach it".</summary>
    public IReadOnlyList<IIommuBackend> All => [_legacy, _iommuFd, _spapr];

    /// <summary>Creates the backends with <paramref name="backend"/> selected.</summary>
    /// <param name="kernel">The kernel.</param>
    /// <param name="backend">auto, legacy, iommufd or spapr-tce.</param>
    /// <param name="allowUnsafeNoIommu">Whether no-IOMMU groups may be attached (<c>--allow-unsafe-noiommu</c>).</param>
    public static CliBackends Create(IKernel kernel, string backend = "auto", bool allowUnsafeNoIommu = false)
    {
        return new CliBackends(kernel, new VfioOptions { Backend = backend, AllowUnsafeNoIommu = allowUnsafeNoIommu });
    }

    public void Dispose()
    {
        Manager.Dispose();
        _iommuFd.Dispose();
        _spapr.Dispose();
        _legacy.Dispose();
    }
}
