// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// A device fd from <c>VFIO_GROUP_GET_DEVICE_FD</c> (anonymous inode <c>[vfio-device]</c>): every call goes to the
/// device's VFIO bus driver; the first open and last close run its open/close (vfio_group_ioctl_get_device_fd, vfio_group_fops_release).
/// </summary>
internal sealed class DeviceFile(SimDevice device, GroupFile group) : SimFile
{
    internal SimDevice Device { get; } = device;

    internal override FileType Type => FileType.AnonymousInode;

    internal override string ProcLink => "anon_inode:[vfio-device]";

    /// <summary>Counts the open; the driver's open_device runs on the first.</summary>
    internal void Opened()
    {
        if (Device.OpenCount++ == 0)
        {
            Device.VfioDriver!.OpenDevice();
        }
    }

    internal override int Ioctl(uint request, nint argument)
    {
        // vfio_device_fops_unl_ioctl / vfio_df_ioctl_bind_iommufd: BIND is handled before the driver; on an fd from a group it fails with EINVAL (not a cdev fd)
        // once the argument could be read.
        if (request == Vfio.Core.Interop.VfioUapi.VFIO_DEVICE_BIND_IOMMUFD)
        {
            return argument == 0 ? -(int)Errno.EFAULT : -(int)Errno.EINVAL;
        }
        return Device.Removed ? -ENODEV : Device.VfioDriver!.Ioctl(request, argument);
    }

    // A surprise-removed device's fds stay open (closing them releases as usual) but every access fails.
    internal override long Read(Span<byte> buffer, long offset) => Device.Removed ? -ENODEV : Device.VfioDriver!.Read(buffer, offset);

    internal override long Write(ReadOnlySpan<byte> buffer, long offset) => Device.Removed ? -ENODEV : Device.VfioDriver!.Write(buffer, offset);

    internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        if (Device.Removed)
        {
            mapping = null;
            return -ENODEV;
        }
        return Device.VfioDriver!.Map(offset, length, protection, alignment, out mapping);
    }

    private const int ENODEV = (int)Errno.ENODEV;

    internal override void Release()
    {
        if (--Device.OpenCount == 0)
        {
            Device.VfioDriver!.CloseDevice();
            // Unbound through the iommufd it was bound to: a mapping of the device keeps it open after its fd closed
            // (SimulatedKernel.Map), and on iommufd's compat path a device does not hold its group, so the group may have
            // been released and attached to another iommufd meanwhile.
            if (Device.Kernel.IommuFdBindings.TryGetValue(Device, out DeviceObject? binding) && !binding.ViaCdev)
            {
                binding.Context.CloseDevice(Device);
            }
            else
            {
                (group.Group.IommuFdContainer as IVfioCompatContainer)?.CloseDevice(Device);
            }
        }
        group.DeviceClosed();
    }
}
