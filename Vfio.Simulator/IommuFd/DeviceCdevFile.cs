// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

/// <summary>
/// A VFIO device cdev, <c>/dev/vfio/devices/vfioN</c> (drivers/vfio/device_cdev.c, vfio_device_fops_unl_ioctl): unusable until
/// <c>VFIO_DEVICE_BIND_IOMMUFD</c>, then attached with <c>ATTACH_IOMMUFD_PT</c>; every other call goes to the device's
/// VFIO bus driver as on a group-path device fd. Closing the fd closes the device and unbinds it.
/// </summary>
internal sealed class DeviceCdevFile : SimFile
{
    private const int EINVAL = (int)Errno.EINVAL;
    private readonly SimulatedKernel _kernel;
    private DeviceObject? _binding;

    private DeviceCdevFile(SimulatedKernel kernel, SimDevice device)
    {
        _kernel = kernel;
        Device = device;
    }

    internal SimDevice Device { get; }

    /// <summary>Opening the node succeeds while the device is registered; all checks happen at bind.</summary>
    internal static (int Result, SimFile? File) Open(SimulatedKernel kernel, SimDevice device)
        => device.IsVfio && !device.Removed ? (0, new DeviceCdevFile(kernel, device)) : (-(int)Errno.ENODEV, null);

    internal override FileType Type => FileType.CharacterDevice;

    internal override (uint Major, uint Minor) DeviceNumber => (SimulatedKernel.VfioCdevMajor, (uint)Device.CdevIndex!.Value);

    internal override string ProcLink => $"/dev/vfio/devices/vfio{Device.CdevIndex}";

    internal override int Ioctl(uint request, nint argument)
    {
        if (Device.Removed)
        {
            return -(int)Errno.ENODEV;
        }
        if (request == VfioUapi.VFIO_DEVICE_BIND_IOMMUFD)
        {
            return Bind(argument);
        }
        if (_binding is null)
        {
            return -EINVAL;
        }
        if (request == VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT)
        {
            return Attach(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_DETACH_IOMMUFD_PT)
        {
            return Detach(argument);
        }
        return Device.VfioDriver!.Ioctl(request, argument);
    }

    internal override long Read(Span<byte> buffer, long offset)
        => Device.Removed ? -(int)Errno.ENODEV : _binding is null ? -EINVAL : Device.VfioDriver!.Read(buffer, offset);

    internal override long Write(ReadOnlySpan<byte> buffer, long offset)
        => Device.Removed ? -(int)Errno.ENODEV : _binding is null ? -EINVAL : Device.VfioDriver!.Write(buffer, offset);

    internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        if (Device.Removed || _binding is null)
        {
            mapping = null;
            return Device.Removed ? -(int)Errno.ENODEV : -EINVAL;
        }
        return Device.VfioDriver!.Map(offset, length, protection, alignment, out mapping);
    }

    /// <summary>VFIO_DEVICE_BIND_IOMMUFD, checked in vfio_df_ioctl_bind_iommufd's order.</summary>
    private int Bind(nint argument)
    {
        int rc = UserMemory.Read(argument, 16, out vfio_device_bind_iommufd bind);
        if (rc < 0)
        {
            return rc;
        }
        if (bind.argsz < 16 || bind.flags != 0 || bind.iommufd < 0)
        {
            return -EINVAL;
        }
        if (Device.Group.OpenFile is not null)
        {
            return -(int)Errno.EBUSY;
        }
        if (_binding is not null)
        {
            return -EINVAL;
        }
        if (!SimulatedKernel.IsOpenFd(bind.iommufd))
        {
            return -(int)Errno.EBADF;
        }
        if (_kernel.ResolveFd(bind.iommufd) is not IommuFdFile context)
        {
            return -(int)Errno.EBADFD;
        }
        if (Device.OpenCount > 0)
        {
            return -EINVAL;
        }
        rc = context.BindDevice(Device, viaCdev: true, out DeviceObject? binding);
        if (rc < 0)
        {
            return rc;
        }
        _binding = binding;
        if (Device.OpenCount++ == 0)
        {
            Device.VfioDriver!.OpenDevice();
        }
        rc = UserMemory.Write(argument + 12, sizeof(uint), binding!.Id);
        if (rc < 0)
        {
            Unbind();
        }
        return rc;
    }

    /// <summary>VFIO_DEVICE_ATTACH_IOMMUFD_PT (vfio_df_ioctl_attach_pt): writes back the HWPT now attached.</summary>
    private int Attach(nint argument)
    {
        int rc = UserMemory.Read(argument, 12, out vfio_device_attach_iommufd_pt attach);
        if (rc < 0)
        {
            return rc;
        }
        if (attach.argsz < 12 || attach.flags != 0)
        {
            return -EINVAL;
        }
        rc = _binding!.Context.Attach(_binding, attach.pt_id, out uint hwptId);
        if (rc < 0)
        {
            return rc;
        }
        rc = UserMemory.Write(argument + 8, sizeof(uint), hwptId);
        if (rc < 0)
        {
            _binding.Context.Detach(_binding);
        }
        return rc;
    }

    /// <summary>VFIO_DEVICE_DETACH_IOMMUFD_PT (vfio_df_ioctl_detach_pt): always 0 once the arguments are valid.</summary>
    private int Detach(nint argument)
    {
        int rc = UserMemory.Read(argument, 8, out vfio_device_detach_iommufd_pt detach);
        if (rc < 0)
        {
            return rc;
        }
        if (detach.argsz < 8 || detach.flags != 0)
        {
            return -EINVAL;
        }
        _binding!.Context.Detach(_binding);
        return 0;
    }

    /// <summary>Last close of a bound device (vfio_df_device_last_close): the driver closes, then the unbind.</summary>
    private void Unbind()
    {
        DeviceObject binding = _binding!;
        _binding = null;
        if (--Device.OpenCount == 0)
        {
            Device.VfioDriver!.CloseDevice();
        }
        binding.Context.UnbindDevice(binding);
    }

    internal override void Release()
    {
        if (_binding is not null)
        {
            Unbind();
        }
    }
}
