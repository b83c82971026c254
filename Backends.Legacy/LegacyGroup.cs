// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;

namespace Vfio.Backends.Legacy;

/// <summary>An open VFIO group (<c>/dev/vfio/N</c> or <c>noiommu-N</c>, or a passed fd) and the devices opened
/// through it.</summary>
internal sealed class LegacyGroup
{
    internal LegacyGroup(int number, SafeFileHandle fd, bool ownsFd, bool noIommu, string node)
    {
        Number = number;
        Fd = fd ?? throw new ArgumentNullException(nameof(fd));
        OwnsFd = ownsFd;
        NoIommu = noIommu;
        Node = node;
    }

    /// <summary>The IOMMU group number.</summary>
    internal int Number { get; }

    /// <summary>The group fd.</summary>
    internal SafeFileHandle Fd { get; }

    /// <summary>False for a passed fd: it is never closed here.</summary>
    internal bool OwnsFd { get; }

    /// <summary>A no-IOMMU group.</summary>
    internal bool NoIommu { get; }

    /// <summary>The node or passed-fd reference, for messages.</summary>
    internal string Node { get; }

    /// <summary>The container the group is set to; null before SET_CONTAINER and after UNSET_CONTAINER.</summary>
    internal LegacyContainer? Container { get; set; }

    /// <summary>The attached devices opened through this group.</summary>
    internal List<LegacyAttachedDevice> Devices { get; } = [];

    /// <summary>Closes the fd when owned (a passed fd stays open for its owner).</summary>
    internal void Close()
    {
        if (OwnsFd)
        {
            Fd.Dispose();
        }
    }

    public override string ToString() => "group " + Number.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
