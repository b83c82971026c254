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

    /// <summary>The PCI class code of the device at <paramref name="sysfsPath"/> (its <c>class</c>, 24 bits, e.g.
    /// <c>0x060400</c>), or null when it has none (not a PCI device, or no such device).</summary>
    /// <param name="kernel">The kernel port.</param>
    /// <param name="sysfsPath">The device's sysfs directory.</param>
    /// <returns>The class code.</returns>
    public static uint? GetPciClass(IKernel kernel, string sysfsPath)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return ReadHex(kernel, sysfsPath + "/class", 0xffffff);
    }

    /// <summary>True for the class of a PCI-to-PCI bridge (0x0604xx, or 0x0609xx semi-transparent) or a CardBus bridge
    /// (0x0607xx): the devices with a type 1 or 2 configuration header, which vfio-pci refuses
    /// (<c>vfio_pci_core_register_device</c> takes only <c>PCI_HEADER_TYPE_NORMAL</c>). Host bridges (0x0600xx) and ISA
    /// bridges (0x0601xx) have a normal header and are not among them.</summary>
    /// <param name="pciClass">The class code, e.g. from <see cref="GetPciClass"/>.</param>
    /// <returns>True for such a bridge.</returns>
    public static bool IsPciBridgeClass(uint? pciClass) => (pciClass >> 8) is 0x0604 or 0x0607 or 0x0609;

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
    /// VFIO driver, with its ids and class, driver, group (members, viability, node) and cdev. Devices without a group that no
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
                bool pci = kind == VfioBus.Pci;
                devices.Add(new VfioDeviceEntry(name, kind, path,
                    pci ? (ushort?)ReadHex(kernel, path + "/vendor", ushort.MaxValue) : null,
                    pci ? (ushort?)ReadHex(kernel, path + "/device", ushort.MaxValue) : null,
                    pci ? GetPciClass(kernel, path) : null,
                    driver, group, noIommu, members, node, GetCdevPath(kernel, path)));
            }
        }
        return devices;
    }

    /// <summary>A sysfs attribute in hex (<c>0x1234</c>), or null when it is missing, malformed or above <paramref name="max"/>.</summary>
    private static uint? ReadHex(IKernel kernel, string path, uint max)
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
        return uint.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint value) && value <= max ? value : null;
    }

    private static string LastComponent(string path)
    {
        int slash = path.TrimEnd('/').LastIndexOf('/');
        return slash < 0 ? path : path[(slash + 1)..].TrimEnd('/');
    }
}
