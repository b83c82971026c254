// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>An open VFIO group a legacy backend holds: its number and fd, for the fd array of a PCI hot reset.</summary>
/// <param name="Number">The IOMMU group number.</param>
/// <param name="Fd">The group fd; the backend owns it (never dispose it) and closes it when the group's last device
/// detaches.</param>
public readonly record struct HotResetGroup(int Number, SafeFileHandle Fd);

/// <summary>
/// How an attached device proves to the kernel that the process owns every device a PCI hot reset
/// (<c>VFIO_DEVICE_PCI_HOT_RESET</c>) affects, in the form its backend uses: the fds of the affected IOMMU groups
/// (legacy containers; the kernel checks that each affected device's group is among them), or the device-id form of a
/// device bound to an iommufd (an empty fd array; the kernel checks that each affected device is bound to the same
/// iommufd). <see cref="AttachedDevice.GetHotResetProof"/> gives it without a downcast.
/// </summary>
/// <remarks>
/// The fds stay valid while the device that gave the proof is attached; take a proof right before the reset.
/// The caller builds the reset's argument from <see cref="SelectGroupFds"/> (or an empty array when
/// <see cref="UsesDeviceIds"/>); the proof exposes no kernel structure.
/// </remarks>
public sealed class HotResetProof
{
    private readonly HotResetGroup[] _groups;

    private HotResetProof(HotResetGroup[] groups, uint? deviceId)
    {
        _groups = groups;
        DeviceId = deviceId;
    }

    /// <summary>True for the device-id form (iommufd): the reset takes no group fds.</summary>
    public bool UsesDeviceIds => DeviceId is not null;

    /// <summary>The device's id in its iommufd (the form <c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c> reports affected
    /// devices in with <c>VFIO_PCI_HOT_RESET_FLAG_DEV_ID</c>); null for the group-fd form.</summary>
    public uint? DeviceId { get; }

    /// <summary>The groups the backend holds open (group-fd form); empty for the device-id form.</summary>
    public IReadOnlyList<HotResetGroup> Groups => _groups;

    /// <summary>The proof of a backend whose reset takes group fds: every group it holds (backends make it through
    /// <see cref="AttachedDevice"/>'s protected factory).</summary>
    /// <param name="groups">The open groups.</param>
    /// <returns>The proof.</returns>
    internal static HotResetProof ByGroupFds(IEnumerable<HotResetGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        return new HotResetProof([.. groups], null);
    }

    /// <summary>The proof of a device bound to an iommufd: its device id, no group fds.</summary>
    /// <param name="deviceId">The device's iommufd object id.</param>
    /// <returns>The proof.</returns>
    internal static HotResetProof ByDeviceId(uint deviceId) => new([], deviceId);

    /// <summary>
    /// The group fds a reset that affects the IOMMU groups <paramref name="affectedGroups"/> passes: one per affected
    /// group, in the order given (duplicates once). The kernel refuses more fds than affected devices, so only affected
    /// groups are returned. Empty for the device-id form.
    /// </summary>
    /// <param name="affectedGroups">The group numbers <c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c> reported.</param>
    /// <returns>The fds, as the integers the kernel takes.</returns>
    /// <exception cref="VfioDeviceUnusableException">An affected group is not open in this process: the reset would
    /// touch a device the process does not own.</exception>
    public int[] SelectGroupFds(IEnumerable<int> affectedGroups)
    {
        ArgumentNullException.ThrowIfNull(affectedGroups);
        if (UsesDeviceIds)
        {
            return [];
        }
        var fds = new List<int>();
        var seen = new HashSet<int>();
        foreach (int number in affectedGroups)
        {
            if (!seen.Add(number))
            {
                continue;
            }
            int index = Array.FindIndex(_groups, g => g.Number == number);
            if (index < 0)
            {
                string g = number.ToString(System.Globalization.CultureInfo.InvariantCulture);
                throw new VfioDeviceUnusableException("VFIO_DEVICE_PCI_HOT_RESET", "IOMMU group " + g,
                    $"the hot reset affects IOMMU group {g}, which this process has not opened, so it cannot prove it owns the group's devices",
                    $"Attach a device of IOMMU group {g} through the same backend before the reset, or reset a device whose bus or slot holds only devices you own.");
            }
            fds.Add((int)_groups[index].Fd.DangerousGetHandle());
        }
        return [.. fds];
    }
}
