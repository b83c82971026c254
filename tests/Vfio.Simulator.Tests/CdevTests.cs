// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using static Vfio.Simulator.Tests.IommuFdTestKit;

namespace Vfio.Simulator.Tests;

/// <summary>The VFIO device cdev: bind, attach, detach, the group-vs-cdev exclusion and driver dispatch.</summary>
public sealed class CdevTests
{
    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    public void Unbound_EverythingButBind_Einval()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        kernel.Ioctl(cdev, CountingBusDriver.PingRequest, 0).ShouldBe(-(int)Errno.EINVAL);
        Attach(kernel, cdev, 1, out _).ShouldBe(-(int)Errno.EINVAL);
        kernel.PRead(cdev, new byte[4], 0).ShouldBe(-(int)Errno.EINVAL);
        kernel.PWrite(cdev, new byte[4], 0).ShouldBe(-(int)Errno.EINVAL);
        kernel.Map(cdev, 0, 4096, MemoryProtection.Read, out _).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    public void Bind_Checks_InTableOrder()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        kernel.Ioctl(cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, 0).ShouldBe(-(int)Errno.EFAULT);
        var bind = new vfio_device_bind_iommufd { argsz = 12, iommufd = Fd(iommufd) };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind).ShouldBe(-(int)Errno.EINVAL);
        bind = new vfio_device_bind_iommufd { argsz = 16, flags = 1, iommufd = Fd(iommufd) };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind).ShouldBe(-(int)Errno.EINVAL);
        bind = new vfio_device_bind_iommufd { argsz = 16, iommufd = -1 };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind).ShouldBe(-(int)Errno.EINVAL);
        bind = new vfio_device_bind_iommufd { argsz = 16, iommufd = int.MaxValue };   // never open (999 could be, with tests running in parallel)
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind).ShouldBe(-(int)Errno.EBADF);
        bind = new vfio_device_bind_iommufd { argsz = 16, iommufd = Fd(cdev) };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, ref bind).ShouldBe(-(int)Errno.EBADFD);
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        devid.ShouldBe(1u);
        Bind(kernel, cdev, iommufd, out _).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    public void Bind_SecondCdevFdOfOpenDevice_Einval()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle first = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        using SafeFileHandle second = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, first, iommufd, out _).ShouldBe(0);
        Bind(kernel, second, iommufd, out _).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    [Spec("drivers/vfio/group.c vfio_group_fops_open")]
    public void GroupOpen_AndCdevBind_ExcludeEachOther_Ebusy()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        Bind(kernel, cdev, iommufd, out _).ShouldBe(-(int)Errno.EBUSY);
        group.Dispose();
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        kernel.FindDevice(Dev0)!.BoundThroughCdev.ShouldBeTrue();
        kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out SafeFileHandle again).ShouldBe(-(int)Errno.EBUSY);
        again.Dispose();
        cdev.Dispose();
        kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out again).ShouldBe(0);
        again.Dispose();
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    public void Bind_SameGroupDifferentIommufd_Eperm_SameIommufdShared()
    {
        using SimulatedKernel kernel = Machine(sameGroup: true);
        using SafeFileHandle a = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle b = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev0 = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        using SafeFileHandle cdev1 = OpenOk(kernel, "/dev/vfio/devices/vfio1");
        Bind(kernel, cdev0, a, out _).ShouldBe(0);
        Bind(kernel, cdev1, b, out _).ShouldBe(-(int)Errno.EPERM);
        Bind(kernel, cdev1, a, out uint devid).ShouldBe(0);
        devid.ShouldBe(2u);
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    public void Bind_NoInterruptRemapping_Eperm_KernelDriverInGroup_Eperm()
    {
        using (SimulatedKernel kernel = Machine(configure: t => t.InterruptRemapping = false))
        using (SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu"))
        using (SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0"))
        {
            Bind(kernel, cdev, iommufd, out _).ShouldBe(-(int)Errno.EPERM);
        }
        using (SimulatedKernel kernel = Machine(configure: t => t.AddPci("0000:00:04.0", iommuGroup: 2, model: null, driver: "nvme")))
        using (SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu"))
        using (SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0"))
        {
            Bind(kernel, cdev, iommufd, out _).ShouldBe(-(int)Errno.EPERM);
        }
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    public void Bound_DriverOpensOnce_CallsReachDriver_CloseRunsCloseDevice()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        CountingBusDriver driver = DriverOf(kernel, Dev0);
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        driver.Opens.ShouldBe(1);
        kernel.FindDevice(Dev0)!.OpenCount.ShouldBe(1);
        kernel.Ioctl(cdev, CountingBusDriver.PingRequest, 0).ShouldBe(77);
        kernel.PRead(cdev, new byte[4], 0).ShouldBe(4);
        cdev.Dispose();
        kernel.OpenFileCount.ShouldBe(1);
        driver.Closes.ShouldBe(1);
        kernel.FindDevice(Dev0)!.OpenCount.ShouldBe(0);
        kernel.FindDevice(Dev0)!.BoundThroughCdev.ShouldBeFalse();
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_attach_pt")]
    public void Attach_Checks_AndAutoHwptIds_MatchTestbed()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        ioas.ShouldBe(2u);
        var attach = new vfio_device_attach_iommufd_pt { argsz = 8, pt_id = ioas };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, ref attach).ShouldBe(-(int)Errno.EINVAL);
        attach = new vfio_device_attach_iommufd_pt { argsz = 12, flags = 1, pt_id = ioas };
        Call(kernel, cdev, VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, ref attach).ShouldBe(-(int)Errno.EINVAL);
        Attach(kernel, cdev, 9, out _).ShouldBe(-(int)Errno.ENOENT);
        Attach(kernel, cdev, devid, out _).ShouldBe(-(int)Errno.EINVAL);
        Attach(kernel, cdev, ioas, out uint hwpt).ShouldBe(0);
        hwpt.ShouldBe(3u);
        Attach(kernel, cdev, ioas, out uint same).ShouldBe(0);
        same.ShouldBe(3u);
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_attach_pt")]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void Attach_TwoDevices_ShareTheAutoHwptOfAnIoas()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev0, _, uint ioas, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev0)
        using (SafeFileHandle cdev1 = OpenOk(kernel, "/dev/vfio/devices/vfio1"))
        {
            Bind(kernel, cdev1, iommufd, out _).ShouldBe(0);
            Attach(kernel, cdev1, ioas, out uint second).ShouldBe(0);
            second.ShouldBe(hwpt);
        }
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_attach_pt")]
    public void Attach_Replace_MovesToNewIoas_OldAutoHwptDestroyed()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, _, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            uint other = IoasAlloc(kernel, iommufd);
            Attach(kernel, cdev, other, out uint replaced).ShouldBe(0);
            replaced.ShouldNotBe(hwpt);
            var destroy = new iommu_destroy { size = 8, id = hwpt };
            Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.ENOENT);
        }
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_attach_pt")]
    public void Attach_SameGroupOtherDeviceOnDifferentHwpt_Einval()
    {
        using SimulatedKernel kernel = Machine(sameGroup: true);
        (SafeFileHandle iommufd, SafeFileHandle cdev0, _, _, _) = Attached(kernel);
        using (iommufd)
        using (cdev0)
        using (SafeFileHandle cdev1 = OpenOk(kernel, "/dev/vfio/devices/vfio1"))
        {
            Bind(kernel, cdev1, iommufd, out _).ShouldBe(0);
            uint other = IoasAlloc(kernel, iommufd);
            Attach(kernel, cdev1, other, out _).ShouldBe(-(int)Errno.EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_detach_pt")]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Dma_ThroughAttachedIoas_ReadOnlyWriteFaults_DetachBlocks()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev)
        using (var memory = new ProcessPages(2 * ProcessPages.PageSize))
        {
            SimDevice device = kernel.FindDevice(Dev0)!;
            ulong rw = 0x100000, ro = 0x200000;
            Map(kernel, iommufd, ioas, memory.Address, 4096, ref rw, Fixed).ShouldBe(0);
            Map(kernel, iommufd, ioas, memory.Address + 4096, 4096, ref ro, IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA | IommuUapi.IOMMU_IOAS_MAP_READABLE).ShouldBe(0);
            device.DmaWrite(0x100004, [7, 8]).ShouldBeTrue();
            memory.Read(4, 2).ShouldBe(new byte[] { 7, 8 });
            device.DmaWrite(0x200000, [1]).ShouldBeFalse();
            byte[] into = new byte[2];
            device.DmaRead(0x100004, into).ShouldBeTrue();
            into.ShouldBe(new byte[] { 7, 8 });
            var detach = new vfio_device_detach_iommufd_pt { argsz = 8, flags = 1 };
            Call(kernel, cdev, VfioUapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, ref detach).ShouldBe(-(int)Errno.EINVAL);
            Detach(kernel, cdev).ShouldBe(0);
            Detach(kernel, cdev).ShouldBe(0);
            device.DmaWrite(0x100004, [0]).ShouldBeFalse();
            kernel.DmaFaults.Count.ShouldBe(2);
            var destroy = new iommu_destroy { size = 8, id = hwpt };
            Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.ENOENT);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_unmap")]
    public void Dma_AfterUnmap_Faults()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        using (var memory = new ProcessPages(1 * ProcessPages.PageSize))
        {
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, memory.Address, 4096, ref iova, Fixed).ShouldBe(0);
            Unmap(kernel, iommufd, ioas, 0x100000, 4096, out ulong unmapped).ShouldBe(0);
            unmapped.ShouldBe(4096ul);
            kernel.FindDevice(Dev0)!.DmaWrite(0x100000, [1]).ShouldBeFalse();
        }
    }
}
