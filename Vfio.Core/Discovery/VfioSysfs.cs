// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Core;

/// <summary>One device of an IOMMU group, as sysfs shows it.</summary>
/// <param name="Name">The device's name, e.g. <c>0000:00:02.0</c>.</param>
/// <param name="Driver">The driver it is bound to, or null when unbound.</param>
public readonly record struct VfioGroupMember(string Name, string? Driver)
{
    /// <summary>True when the member does not stop the group from being viable: bound to a VFIO driver, to a driver
    /// the kernel allows in a VFIO group (<c>pci-stub</c>, <c>pcieport</c>), or to none.</summary>
    public bool KeepsGroupViable => Driver is null || VfioSysfs.IsVfioDriver(Driver) || Driver is "pci-stub" or "pcieport";
}

/// <summary>
/// The sysfs facts backends and tools need about a device, read through the kernel port (so a simulated /sys can
/// stand in): its IOMMU group, driver, cdev and the other members of its group.
/// </summary>
public static class VfioSysfs
{
    /// <summary>True for a VFIO bus driver: <c>vfio-pci</c>, <c>vfio-platform</c>, <c>vfio-amba</c>, and the vfio-pci
    /// variant drivers (<c>mlx5_vfio_pci</c>, <c>nvgrace_gpu_vfio_pci</c>, ...).</summary>
    /// <param name="driver">The driver's name.</param>
    /// <returns>True when it is a VFIO driver.</returns>
    public static bool IsVfioDriver(string? driver)
        => driver is not null && (driver.StartsWith("vfio", StringComparison.Ordinal) || driver.EndsWith("_vfio_pci", StringComparison.Ordinal)
            || driver.EndsWith("-vfio-pci", StringComparison.Ordinal));

    /// <summary>The IOMMU group of the device at <paramref name="sysfsPath"/> (its <c>iommu_group</c> link).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="sysfsPath">The device's sysfs directory.</param>
    /// <returns>The group number, or null when the device has no group (no IOMMU and no no-IOMMU mode, or no device).</returns>
    public static int? GetIommuGroup(IKernel kernel, string sysfsPath)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentException.ThrowIfNullOrEmpty(sysfsPath);
        if (kernel.ReadLink(sysfsPath + "/iommu_group", out string target) < 0)
        {
            return null;
        }
        string last = LastComponent(target);
        return int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out int group) ? group : null;
    }

    /// <summary>The driver the device is bound to (its <c>driver</c> link), or null when unbound.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="sysfsPath">The device's sysfs directory.</param>
    /// <returns>The driver's name, e.g. <c>vfio-pci</c>.</returns>
    public static string? GetDriver(IKernel kernel, string sysfsPath)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return kernel.ReadLink(sysfsPath + "/driver", out string target) < 0 ? null : LastComponent(target);
    }

    /// <summary>The device's VFIO cdev (<c>/dev/vfio/devices/vfioN</c>, from its <c>vfio-dev</c> directory), or null
    /// when it has none (not bound to a VFIO driver, a kernel without <c>CONFIG_VFIO_DEVICE_CDEV</c>, or no-IOMMU).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="sysfsPath">The device's sysfs directory.</param>
    /// <returns>The cdev's path.</returns>
    public static string? GetCdevPath(IKernel kernel, string sysfsPath)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        if (kernel.ListDirectory(sysfsPath + "/vfio-dev", out string[] entries) < 0)
        {
            return null;
        }
        foreach (string entry in entries)
        {
            if (entry.StartsWith("vfio", StringComparison.Ordinal) && !entry.Contains('/', StringComparison.Ordinal))
            {
                string path = "/dev/vfio/devices/" + entry;
                if (kernel.Exists(path))
                {
                    return path;
                }
            }
        }
        return null;
    }

    /// <summary>The members of IOMMU group <paramref name="group"/> with their drivers (from
    /// <c>/sys/kernel/iommu_groups/N/devices</c>).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="group">The group number.</param>
    /// <returns>The members, sorted by name; empty when the group does not exist.</returns>
    public static IReadOnlyList<VfioGroupMember> GetGroupMembers(IKernel kernel, int group)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        string dir = string.Create(CultureInfo.InvariantCulture, $"/sys/kernel/iommu_groups/{group}/devices");
        if (kernel.ListDirectory(dir, out string[] names) < 0)
        {
            return [];
        }
        var members = new VfioGroupMember[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            members[i] = new VfioGroupMember(names[i], GetDriver(kernel, dir + "/" + names[i]));
        }
        return members;
    }

    /// <summary>The members of IOMMU group <paramref name="group"/> that keep it from being viable: those bound to a
    /// host driver that claims DMA ownership of the group (<see cref="VfioGroupMember.KeepsGroupViable"/> false), e.g.
    /// a virtio device on <c>virtio-pci</c> behind the same conventional PCI bridge as the device.</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="group">The group number.</param>
    /// <returns>Those members; empty when every member is bound to a VFIO driver, an allowed driver, or none.</returns>
    public static IReadOnlyList<VfioGroupMember> GetHostDriverMembers(IKernel kernel, int group)
    {
        var offenders = new List<VfioGroupMember>();
        foreach (VfioGroupMember member in GetGroupMembers(kernel, group))
        {
            if (!member.KeepsGroupViable)
            {
                offenders.Add(member);
            }
        }
        return offenders;
    }

    /// <summary>The group's <c>/dev/vfio</c> node: <c>/dev/vfio/N</c>, or <c>/dev/vfio/noiommu-N</c> for a no-IOMMU
    /// group; null when neither exists (no device of the group is bound to a VFIO driver).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="group">The group number.</param>
    /// <param name="noIommu">True when the node is a no-IOMMU one.</param>
    /// <returns>The node's path.</returns>
    public static string? GetGroupNode(IKernel kernel, int group, out bool noIommu)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        string path = string.Create(CultureInfo.InvariantCulture, $"/dev/vfio/{group}");
        if (kernel.Exists(path))
        {
            noIommu = false;
            return path;
        }
        path = string.Create(CultureInfo.InvariantCulture, $"/dev/vfio/noiommu-{group}");
        noIommu = kernel.Exists(path);
        return noIommu ? path : null;
    }

    /// <summary>
    /// The devices VFIO could use, from sysfs: every PCI and platform device that is in an IOMMU group or bound to a
    /// VFIO driver, with its ids, driver, group (members, viability, node) and cdev. Devices without a group that no
    /// VFIO driver holds (most platform devices, any device on a machine without an IOMMU) are left out.
    /// </summary>
    /// <param name="kernel">The kernel port.</param>
    /// <returns>The devices, PCI first, each bus sorted by name.</returns>
    /// <example>
    /// <code>
    /// foreach (VfioDeviceEntry device in VfioSysfs.ListDevices(LinuxKernel.Instance))
    /// {
    ///     Console.WriteLine($"{device.Name} group {device.IommuGroup} viable {device.IsGroupViable}");
    /// }
    /// </code>
    /// </example>
    public static IReadOnlyList<VfioDeviceEntry> ListDevices(IKernel kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var devices = new List<VfioDeviceEntry>();
        foreach ((string bus, VfioBus kind) in (ReadOnlySpan<(string, VfioBus)>)[("pci", VfioBus.Pci), ("platform", VfioBus.Platform), ("amba", VfioBus.Platform)])
        {
            string root = "/sys/bus/" + bus + "/devices";
            if (kernel.ListDirectory(root, out string[] names) < 0)
            {
                continue;
            }
            foreach (string name in names)
            {
                string path = root + "/" + name;
                string? driver = GetDriver(kernel, path);
                int? group = GetIommuGroup(kernel, path);
                if (group is null && !IsVfioDriver(driver))
                {
                    continue;
                }
                IReadOnlyList<VfioGroupMember> members = group is int g ? GetGroupMembers(kernel, g) : [new VfioGroupMember(name, driver)];
                bool noIommu = false;
                string? node = group is int n ? GetGroupNode(kernel, n, out noIommu) : null;
                devices.Add(new VfioDeviceEntry(name, kind, path,
                    kind == VfioBus.Pci ? ReadHex16(kernel, path + "/vendor") : null,
                    kind == VfioBus.Pci ? ReadHex16(kernel, path + "/device") : null,
                    driver, group, noIommu, members, node, GetCdevPath(kernel, path)));
            }
        }
        return devices;
    }

    private static ushort? ReadHex16(IKernel kernel, string path)
    {
        if (kernel.ReadText(path, out string text) < 0)
        {
            return null;
        }
        ReadOnlySpan<char> digits = text.AsSpan().Trim();
        if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            digits = digits[2..];
        }
        return ushort.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ushort value) ? value : null;
    }

    private static string LastComponent(string path)
    {
        int slash = path.TrimEnd('/').LastIndexOf('/');
        return slash < 0 ? path : path[(slash + 1)..].TrimEnd('/');
    }
}
