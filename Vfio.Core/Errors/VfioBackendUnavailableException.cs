// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The selected IOMMU backend cannot work on this kernel or machine, e.g. <c>iommufd</c> without
/// <c>CONFIG_IOMMUFD</c>. Callers may branch on it to pick another backend.
/// </summary>
public class VfioBackendUnavailableException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="backend">The backend's configuration name: <c>legacy</c>, <c>iommufd</c> or <c>spapr-tce</c>.</param>
    /// <param name="missingFeature">What the kernel or machine lacks, e.g. <c>CONFIG_IOMMUFD (/dev/iommu)</c>.</param>
    /// <param name="errno">The errno that revealed it, if any.</param>
    /// <param name="hint">What to do about it.</param>
    /// <param name="innerException">The failure that revealed it, if any.</param>
    public VfioBackendUnavailableException(string backend, string missingFeature, Errno errno = Errno.None, string? hint = null, Exception? innerException = null)
        : base(errno, "select backend", backend, hint, $"the {backend} backend is unavailable: missing {missingFeature}", innerException)
    {
        Backend = backend;
        MissingFeature = missingFeature;
    }

    /// <summary>The backend's configuration name.</summary>
    public string Backend { get; }

    /// <summary>The kernel feature or device node that is missing.</summary>
    public string MissingFeature { get; }
}
