// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Vfio.Core;

namespace Vfio.Backends.Legacy;

/// <summary>
/// Drives container IOMMU types that the legacy backend itself does not (Type1 and no-IOMMU are its own): a package for
/// another container IOMMU (sPAPR TCE) registers one, and <see cref="LegacyBackend"/> hands a new container over to it
/// when the host's container offers one of its <see cref="IommuTypes"/> and no Type1. The handover is chosen at
/// registration (the handlers the backend was built with), as QEMU picks its container class by IOMMU type.
/// </summary>
public abstract class LegacyIommuTypeHandler
{
    /// <summary>Creates the handler.</summary>
    protected LegacyIommuTypeHandler()
    {
    }

    /// <summary>The configuration name of what the handler provides, e.g. <c>spapr-tce</c>, for logs and messages.</summary>
    public abstract string Name { get; }

    /// <summary>The container IOMMU types the handler drives, most preferred first (e.g. <c>VFIO_SPAPR_TCE_v2_IOMMU</c>
    /// (7), then <c>VFIO_SPAPR_TCE_IOMMU</c> (2)); the backend asks the container for each with
    /// <c>VFIO_CHECK_EXTENSION</c> after Type1 v2 and v1.</summary>
    public abstract IReadOnlyList<uint> IommuTypes { get; }

    /// <summary>
    /// Creates the container object for <paramref name="iommuType"/>: a class derived from <see cref="LegacyContainer"/>
    /// (its constructor takes these arguments), with no group set yet. The backend then sets the first group, calls
    /// the container's <c>SetIommu</c> and <c>ReadInfo</c> and adds it to <paramref name="space"/>.
    /// </summary>
    /// <param name="backend">The backend creating it.</param>
    /// <param name="space">The space it is for.</param>
    /// <param name="containerFd">The open container fd.</param>
    /// <param name="ownsContainerFd">False for a passed fd (borrowed).</param>
    /// <param name="iommuType">One of <see cref="IommuTypes"/>, offered by the container.</param>
    /// <returns>The container.</returns>
    public abstract LegacyContainer CreateContainer(LegacyBackend backend, DmaSpace space, SafeFileHandle containerFd, bool ownsContainerFd, uint iommuType);

    /// <inheritdoc/>
    public override string ToString() => Name;
}
