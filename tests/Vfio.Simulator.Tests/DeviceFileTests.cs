// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>The device fd of the group path (vfio_device_fops_unl_ioctl).</summary>
public sealed class DeviceFileTests
{
    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    public unsafe void BindIommuFd_OnADeviceFdFromAGroup_Einval_NullArgument_Efault()
    {
        using var machine = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = machine.Ready();
        using (container)
        using (group)
        {
            machine.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            using (device)
            {
                var bind = new vfio_device_bind_iommufd { argsz = (uint)sizeof(vfio_device_bind_iommufd), iommufd = 0 };
                machine.Kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, &bind).ShouldBe(-(int)Errno.EINVAL);
                machine.Kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, 0).ShouldBe(-(int)Errno.EFAULT);
                VfioFdValidator.Identify(machine.Kernel, device).Kind.ShouldBe(VfioFdKind.Device);
            }
        }
    }
}
