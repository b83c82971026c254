// SPDX-License-Identifier: MIT
using System.Text;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// An open VFIO group, <c>/dev/vfio/N</c> or <c>/dev/vfio/noiommu-N</c> (drivers/vfio/group.c): status, container
/// attach/detach and device fds. Device fds keep the group attached after its fd is closed (vfio_group_fops_release).
/// </summary>
internal sealed class GroupFile : SimFile
{
    private const int PageSize = 4096;
    private readonly SimulatedKernel _kernel;
    private bool _closed;

    private GroupFile(SimulatedKernel kernel, SimGroup group)
    {
        _kernel = kernel;
        Group = group;
    }

    internal SimGroup Group { get; }

    internal override FileType Type => FileType.CharacterDevice;

    internal override (uint Major, uint Minor) DeviceNumber => (SimulatedKernel.VfioGroupMajor, (uint)Group.Id);

    internal override string ProcLink => $"/dev/vfio/{Group.NodeName}";

    /// <summary>Opens the group node, checked in vfio_group_fops_open's order.</summary>
    internal static (int Result, SimFile? File) Open(SimulatedKernel kernel, SimGroup group)
    {
        if (!group.Devices.Any(d => d.IsVfio))
        {
            return (-(int)Errno.ENODEV, null);
        }
        if (group.NoIommu && !kernel.Topology.Privileged)
        {
            return (-(int)Errno.EPERM, null);
        }
        if (group.AnyCdevBound || group.OpenFile is not null)
        {
            return (-(int)Errno.EBUSY, null);
        }
        var file = new GroupFile(kernel, group);
        group.OpenFile = file;
        return (0, file);
    }

    internal override int Ioctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_GROUP_GET_STATUS)
        {
            return GetStatus(argument);
        }
        if (request == VfioUapi.VFIO_GROUP_SET_CONTAINER)
        {
            return SetContainer(argument);
        }
        if (request == VfioUapi.VFIO_GROUP_UNSET_CONTAINER)
        {
            return UnsetContainer();
        }
        if (request == VfioUapi.VFIO_GROUP_GET_DEVICE_FD)
        {
            return GetDeviceFd(argument);
        }
        return -(int)Errno.ENOTTY;
    }

    private int GetStatus(nint argument)
    {
        int rc = UserMemory.Read(argument, sizeof(uint) * 2, out vfio_group_status status);
        if (rc < 0)
        {
            return rc;
        }
        if (status.argsz < 8)
        {
            return -(int)Errno.EINVAL;
        }
        status.flags = Group.Attached
            ? VfioUapi.VFIO_GROUP_FLAGS_VIABLE | VfioUapi.VFIO_GROUP_FLAGS_CONTAINER_SET
            : Group.KernelOwned || Group.AnyCdevBound ? 0 : VfioUapi.VFIO_GROUP_FLAGS_VIABLE;
        return UserMemory.Write(argument, 8, status);
    }

    private int SetContainer(nint argument)
    {
        int rc = UserMemory.Read(argument, sizeof(int), out int fd);
        if (rc < 0)
        {
            return rc;
        }
        if (!SimulatedKernel.IsOpenFd(fd))
        {
            return -(int)Errno.EBADF;
        }
        if (Group.Attached)
        {
            return -(int)Errno.EINVAL;
        }
        return _kernel.ResolveFd(fd) switch
        {
            ContainerFile container => container.AttachGroup(Group),
            IVfioCompatContainer iommufd => iommufd.AttachGroup(Group),
            _ => -(int)Errno.EBADFD,
        };
    }

    private int UnsetContainer()
    {
        if (!Group.Attached)
        {
            return -(int)Errno.EINVAL;
        }
        if (Group.Container is not null && Group.OpenDeviceCount > 0)
        {
            return -(int)Errno.EBUSY;
        }
        Detach();
        return 0;
    }

    private void Detach()
    {
        Group.Container?.DetachGroup(Group);
        if (Group.IommuFdContainer is IVfioCompatContainer iommufd)
        {
            iommufd.DetachGroup(Group);
        }
        Group.IommuFdContainer = null;
    }

    private int GetDeviceFd(nint argument)
    {
        if (argument == 0)
        {
            return -(int)Errno.EFAULT;
        }
        Span<byte> buffer = stackalloc byte[PageSize];
        _ = UserMemory.CopyFromString(argument, buffer, out int length);
        if (length < 0)
        {
            return -(int)Errno.EINVAL;
        }
        string request = Encoding.UTF8.GetString(buffer[..length]);
        SimDevice? device = Group.Devices.FirstOrDefault(d => d.IsVfio && !d.Removed && Matches(d, request));
        if (device is null)
        {
            return -(int)Errno.ENODEV;
        }
        if (device.Bus == SimulatedBus.Pci && request.Length > device.Name.Length)
        {
            // Only "vf_token=<uuid>" may follow the name, and only for SR-IOV devices, which the model has none of.
            return -(int)Errno.EINVAL;
        }
        if (!Group.Attached)
        {
            return -(int)Errno.EINVAL;
        }
        if (Group.Container is { } container)
        {
            if (container.Driver is null)
            {
                return -(int)Errno.EINVAL;
            }
            if (Group.NoIommu && !_kernel.Topology.Privileged)
            {
                return -(int)Errno.EPERM;
            }
        }
        else if (Group.IommuFdContainer is IVfioCompatContainer iommufd && device.OpenCount == 0)
        {
            int bound = iommufd.OpenDevice(device);
            if (bound < 0)
            {
                return bound;
            }
        }
        var file = new DeviceFile(device, this);
        int fd = _kernel.InstallFd(file);
        if (fd < 0)
        {
            return fd;
        }
        file.Opened();
        Group.OpenDeviceCount++;
        return fd;
    }

    /// <summary>vfio-pci matches the PCI name as a prefix followed by the end or a space; other drivers match exactly.</summary>
    private static bool Matches(SimDevice device, string request)
        => device.Bus == SimulatedBus.Pci
            ? request.StartsWith(device.Name, StringComparison.Ordinal) && (request.Length == device.Name.Length || request[device.Name.Length] == ' ')
            : request == device.Name;

    /// <summary>A device fd of this group was closed.</summary>
    internal void DeviceClosed()
    {
        Group.OpenDeviceCount--;
        DetachIfUnused();
    }

    internal override void Release()
    {
        _closed = true;
        // Container path: every open device fd holds a reference on the group file (container.c's
        // get_file(group->opened_file)), so the group stays open — a second open is EBUSY — until the last one closes.
        if (ReferenceEquals(Group.OpenFile, this) && (Group.Container is null || Group.OpenDeviceCount == 0))
        {
            Group.OpenFile = null;
        }
        DetachIfUnused();
    }

    /// <summary>The group file's last reference: its fd and every device fd opened through it are closed.</summary>
    private void DetachIfUnused()
    {
        if (!_closed || Group.OpenDeviceCount != 0)
        {
            return;
        }
        if (ReferenceEquals(Group.OpenFile, this))
        {
            Group.OpenFile = null;
        }
        if (Group.OpenFile is null)
        {
            Detach();
        }
    }
}
