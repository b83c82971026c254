// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// PCI hot reset (vfio_pci_ioctl_pci_hot_reset). The simulated machine has no hotplug slots, so the reset is a secondary bus reset: the
/// affected devices are every PCI function on the same domain and bus. Functions on the root bus (bus 00, as on
/// the testbed's q35) have no upstream bridge and cannot be bus-reset: both ioctls give <c>ENODEV</c>.
/// </summary>
internal sealed partial class VfioPciDriver
{
    private const uint HotResetMinsz = 12;

    private bool OpenedThroughCdev => Device.BoundThroughCdev;

    /// <summary>Parses <c>DDDD:BB:DD.F</c>; a name of another form gives bus 0 (never resettable).</summary>
    private static (ushort Segment, byte Bus, byte DevFn) ParseAddress(string name)
    {
        const NumberStyles Hex = NumberStyles.AllowHexSpecifier;
        CultureInfo c = CultureInfo.InvariantCulture;
        if (name.Length == 12 && name[4] == ':' && name[7] == ':' && name[10] == '.'
            && ushort.TryParse(name.AsSpan(0, 4), Hex, c, out ushort segment)
            && byte.TryParse(name.AsSpan(5, 2), Hex, c, out byte bus)
            && byte.TryParse(name.AsSpan(8, 2), Hex, c, out byte dev) && dev < 32
            && byte.TryParse(name.AsSpan(11, 1), Hex, c, out byte fn) && fn < 8)
        {
            return (segment, bus, (byte)((dev << 3) | fn));
        }
        return (0, 0, 0);
    }

    /// <summary>The functions a bus reset affects, or null when the bus cannot be reset.</summary>
    private List<SimDevice>? AffectedDevices()
    {
        (ushort segment, byte bus, _) = ParseAddress(Device.Name);
        if (bus == 0)
        {
            return null;
        }
        return [.. Device.Kernel.AllDevices.Where(d => d.Bus == SimulatedBus.Pci && ParseAddress(d.Name) is var a && a.Segment == segment && a.Bus == bus)];
    }

    private int GetHotResetInfo(nint argument)
    {
        if (UserMemory.Read(argument, (int)HotResetMinsz, out vfio_pci_hot_reset_info header) < 0)
        {
            return -EFAULT;
        }
        if (header.argsz < HotResetMinsz)
        {
            return -EINVAL;
        }
        List<SimDevice>? affected = AffectedDevices();
        if (affected is null)
        {
            return -(int)Errno.ENODEV;
        }
        header.flags = 0;
        if ((ulong)affected.Count > (header.argsz - HotResetMinsz) / 8)
        {
            header.count = (uint)affected.Count;
            return UserMemory.Write(argument, (int)HotResetMinsz, in header) < 0 ? -EFAULT : -(int)Errno.ENOSPC;
        }
        var entries = new vfio_pci_dependent_device[affected.Count];
        bool cdev = OpenedThroughCdev;
        Device.Kernel.IommuFdBindings.TryGetValue(Device, out DeviceObject? own);
        bool allOwned = true;
        for (int i = 0; i < affected.Count; i++)
        {
            SimDevice d = affected[i];
            (ushort segment, byte bus, byte devfn) = ParseAddress(d.Name);
            entries[i].segment = segment;
            entries[i].bus = bus;
            entries[i].devfn = devfn;
            if (!cdev)
            {
                if (d.Group.Id < 0)
                {
                    return -(int)Errno.EPERM;
                }
                entries[i].group_id = (uint)d.Group.Id;
                continue;
            }
            if (d.IsVfio && Device.Kernel.IommuFdBindings.TryGetValue(d, out DeviceObject? binding) && binding.Context == own?.Context)
            {
                entries[i].devid = binding.Id;
            }
            else if (d.IsVfio && own is not null && GroupBoundTo(d.Group, own.Context))
            {
                entries[i].devid = 0; // VFIO_PCI_DEVID_OWNED
            }
            else
            {
                entries[i].devid = 0xffff_ffff; // VFIO_PCI_DEVID_NOT_OWNED
                allOwned = false;
            }
        }
        if (cdev)
        {
            header.flags = VfioUapi.VFIO_PCI_HOT_RESET_FLAG_DEV_ID | (allOwned ? VfioUapi.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED : 0);
        }
        header.count = (uint)affected.Count;
        for (int i = 0; i < entries.Length; i++)
        {
            if (UserMemory.Write(argument + (int)HotResetMinsz + (8 * i), 8, in entries[i]) < 0)
            {
                return -EFAULT;
            }
        }
        return UserMemory.Write(argument, (int)HotResetMinsz, in header) < 0 ? -EFAULT : 0;
    }

    private bool GroupBoundTo(SimGroup group, IommuFdFile context)
        => group.Devices.Exists(g => Device.Kernel.IommuFdBindings.TryGetValue(g, out DeviceObject? b) && b.Context == context);

    private int HotReset(nint argument)
    {
        if (UserMemory.Read(argument, (int)HotResetMinsz, out vfio_pci_hot_reset header) < 0)
        {
            return -EFAULT;
        }
        if (header.argsz < HotResetMinsz || header.flags != 0)
        {
            return -EINVAL;
        }
        bool cdev = OpenedThroughCdev;
        if ((header.count != 0) == cdev)
        {
            return -EINVAL;
        }
        List<SimDevice>? affected = AffectedDevices();
        if (affected is null)
        {
            return -(int)Errno.ENODEV;
        }
        var groups = new HashSet<SimGroup>();
        if (!cdev)
        {
            if (header.count > (uint)affected.Count)
            {
                return -EINVAL;
            }
            int[] fds = new int[header.count];
            for (int i = 0; i < fds.Length; i++)
            {
                if (UserMemory.Read(argument + (int)HotResetMinsz + (4 * i), 4, out fds[i]) < 0)
                {
                    return -EFAULT;
                }
            }
            foreach (int fd in fds)
            {
                SimFile? file = Device.Kernel.ResolveFd(fd);
                if (file is null && !SimulatedKernel.IsOpenFd(fd))
                {
                    return -(int)Errno.EBADF;
                }
                if (file is not GroupFile group)
                {
                    return -EINVAL;
                }
                groups.Add(group.Group);
            }
        }
        // Every function the reset touches must be in the reset set (bound to vfio-pci).
        if (affected.Exists(d => !d.IsVfio || d.Driver != "vfio-pci"))
        {
            return -EINVAL;
        }
        Device.Kernel.IommuFdBindings.TryGetValue(Device, out DeviceObject? own);
        foreach (SimDevice d in affected)
        {
            bool owned = cdev ? own is not null && GroupBoundTo(d.Group, own.Context) : groups.Contains(d.Group);
            if (!owned)
            {
                return -EINVAL;
            }
        }
        foreach (SimDevice d in affected)
        {
            (d.VfioDriver as VfioPciDriver)?.BusReset();
        }
        return 0;
    }

    /// <summary>A secondary bus reset reached this function: config space is saved and restored around it.</summary>
    private void BusReset()
    {
        _model.HardwareReset();
        _intxLevel = false;
    }
}
