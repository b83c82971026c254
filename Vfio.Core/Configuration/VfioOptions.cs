// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The library's configuration, bound from the <c>Vfio</c> section (<c>Vfio:Backend=iommufd</c>) or set in code.
/// </summary>
/// <remarks>
/// An fd reference (<see cref="IommuFd"/>, <see cref="ContainerFd"/>, <see cref="GroupFds"/>, <see cref="DeviceFds"/>)
/// is either a decimal fd number the process inherited from its launcher, or the name of an fd received over a Unix
/// socket (<see cref="FdSocket"/>, or added to <see cref="VfioFdStore"/> by the application). Passed fds are checked
/// for what they claim to be before use and are borrowed: the library never closes an inherited fd.
/// </remarks>
public sealed class VfioOptions
{
    /// <summary>The configuration section's name, <c>Vfio</c>.</summary>
    public const string SectionName = "Vfio";

    /// <summary>The backend: <c>auto</c> (iommufd when <c>/dev/iommu</c> exists and the device has a cdev, else
    /// legacy), <c>legacy</c>, <c>iommufd</c> or <c>spapr-tce</c>.</summary>
    public string Backend { get; set; } = "auto";

    /// <summary>Allows groups in no-IOMMU mode (<c>/dev/vfio/noiommu-N</c>): devices then DMA to physical addresses
    /// with no protection at all. Off by default; when on, every such attach logs a warning.</summary>
    public bool AllowUnsafeNoIommu { get; set; }

    /// <summary>Legacy backend: use <c>/dev/iommu</c> (or <see cref="IommuFd"/>) where the container fd goes (the
    /// kernel's iommufd container compatibility, <c>CONFIG_IOMMUFD_VFIO_CONTAINER</c>).</summary>
    public bool IommuFdAsContainer { get; set; }

    /// <summary>An fd reference for <c>/dev/iommu</c>, opened by a management layer; null to open it.</summary>
    public string? IommuFd { get; set; }

    /// <summary>Legacy backend: an fd reference for a container (<c>/dev/vfio/vfio</c>) to use for the first DMA
    /// space; null to open one.</summary>
    public string? ContainerFd { get; set; }

    /// <summary>Legacy backend: fd references for groups by group number (<c>Vfio:GroupFds:7=group7</c>).</summary>
    public Dictionary<string, string> GroupFds { get; } = new(StringComparer.Ordinal);

    /// <summary>iommufd backend: fd references for device cdevs by device name. Configuration keys cannot hold
    /// <c>:</c> (it separates sections), so a key may write <c>_</c> for it: <c>Vfio:DeviceFds:0000_00_02.0=edu</c>
    /// configures device <c>0000:00:02.0</c>.</summary>
    public Dictionary<string, string> DeviceFds { get; } = new(DeviceNameComparer.Instance);

    /// <summary>An inherited fd number of a connected Unix socket from which the named fds are received once, at
    /// start, before any is used; null when the application fills <see cref="VfioFdStore"/> itself.</summary>
    public int? FdSocket { get; set; }

    /// <summary>How long to wait for the fds on <see cref="FdSocket"/>.</summary>
    public TimeSpan FdReceiveTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Compares device names with <c>_</c> and <c>:</c> taken as the same character, so configuration keys (which
/// cannot contain <c>:</c>) can name PCI devices.</summary>
internal sealed class DeviceNameComparer : IEqualityComparer<string>
{
    internal static readonly DeviceNameComparer Instance = new();

    public bool Equals(string? x, string? y)
    {
        if (x is null || y is null)
        {
            return x is null && y is null;
        }
        if (x.Length != y.Length)
        {
            return false;
        }
        for (int i = 0; i < x.Length; i++)
        {
            if (Normalize(x[i]) != Normalize(y[i]))
            {
                return false;
            }
        }
        return true;
    }

    public int GetHashCode(string obj)
    {
        var hash = new HashCode();
        foreach (char c in obj)
        {
            hash.Add(Normalize(c));
        }
        return hash.ToHashCode();
    }

    private static char Normalize(char c) => c == '_' ? ':' : c;
}
