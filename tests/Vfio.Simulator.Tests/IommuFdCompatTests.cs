// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using static Vfio.Simulator.Tests.IommuFdTestKit;

namespace Vfio.Simulator.Tests;

/// <summary>An iommufd used as a VFIO container: the container ioctls (drivers/iommu/iommufd/vfio_compat.c) and the group path (vfio_group_ioctl_set_container, vfio_group_ioctl_get_device_fd).</summary>
public sealed class IommuFdCompatTests
{
    private static int SetContainer(SimulatedKernel kernel, SafeHandle group, SafeHandle iommufd)
    {
        int[] fd = GC.AllocateArray<int>(1, pinned: true);
        fd[0] = Fd(iommufd);
        return kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, Marshal.UnsafeAddrOfPinnedArrayElement(fd, 0));
    }

    private static int GetDeviceFd(SimulatedKernel kernel, SafeHandle group, string name)
    {
        byte[] text = GC.AllocateArray<byte>(name.Length + 1, pinned: true);
        System.Text.Encoding.ASCII.GetBytes(name, text);
        return kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, Marshal.UnsafeAddrOfPinnedArrayElement(text, 0));
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioctl")]
    public void ContainerIoctls_WithoutGroup_ApiVersionExtensionsAndEnodev()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        kernel.Ioctl(iommufd, VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(0);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(1);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_UNMAP_ALL).ShouldBe(1);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_UPDATE_VADDR).ShouldBe(0);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_DMA_CC_IOMMU).ShouldBe(-(int)Errno.ENODEV);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(-(int)Errno.ENODEV);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, 7).ShouldBe(-(int)Errno.EINVAL);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_IOMMU_DIRTY_PAGES, 0).ShouldBe(-(int)Errno.ENOTTY);
        var info = new vfio_iommu_type1_info { argsz = 24 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_GET_INFO, ref info).ShouldBe(-(int)Errno.ENODEV);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioas")]
    public void SetContainer_CreatesCompatIoas_SetIommuRepeatable()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        var cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_GET };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(0);
        cmd.ioas_id.ShouldBe(1u);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
        var status = new vfio_group_status { argsz = 8 };
        Call(kernel, group, VfioUapi.VFIO_GROUP_GET_STATUS, ref status).ShouldBe(0);
        status.flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE | VfioUapi.VFIO_GROUP_FLAGS_CONTAINER_SET);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void GetDeviceFd_BindsAndAttachesToCompatIoas_DmaWorks_CloseUnbinds()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        using var memory = new ProcessPages(1 * ProcessPages.PageSize);
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        int fd = GetDeviceFd(kernel, group, Dev0);
        fd.ShouldBeGreaterThan(0);
        using var device = new SafeFileHandle(fd, ownsHandle: true);
        DriverOf(kernel, Dev0).Opens.ShouldBe(1);
        var map = new vfio_iommu_type1_dma_map { argsz = 32, flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE, vaddr = (ulong)memory.Address, iova = 0x100000, size = 4096 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(0);
        kernel.FindDevice(Dev0)!.DmaWrite(0x100000, [3]).ShouldBeTrue();
        memory.Read(0, 1)[0].ShouldBe((byte)3);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_CHECK_EXTENSION, (nint)VfioUapi.VFIO_DMA_CC_IOMMU).ShouldBe(0);
        device.Dispose();
        kernel.OpenFileCount.ShouldBe(2);
        kernel.FindDevice(Dev0)!.Dma.ShouldBeNull();
        DriverOf(kernel, Dev0).Closes.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioctl")]
    public void GetInfo_CapsChain_DmaAvailThenIovaRanges_ShortBufferGetsArgsz()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        using var device = new SafeFileHandle(GetDeviceFd(kernel, group, Dev0), ownsHandle: true);
        var info = new vfio_iommu_type1_info { argsz = 24 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_GET_INFO, ref info).ShouldBe(0);
        info.flags.ShouldBe(VfioUapi.VFIO_IOMMU_INFO_PGSIZES | VfioUapi.VFIO_IOMMU_INFO_CAPS);
        info.iova_pgsizes.ShouldBe(0x40201000ul);
        info.cap_offset.ShouldBe(0u);
        info.argsz.ShouldBe(24u + 16 + 16 + (2 * 16));
        byte[] buffer = new byte[info.argsz];
        BitConverter.TryWriteBytes(buffer.AsSpan(0, 4), info.argsz);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_IOMMU_GET_INFO, buffer).ShouldBe(0);
        BitConverter.ToUInt32(buffer, 16).ShouldBe(24u); // cap_offset
        BitConverter.ToUInt16(buffer, 24).ShouldBe(VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
        BitConverter.ToUInt32(buffer, 28).ShouldBe(40u); // next
        BitConverter.ToUInt32(buffer, 32).ShouldBe(uint.MaxValue);
        BitConverter.ToUInt16(buffer, 40).ShouldBe(VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
        BitConverter.ToUInt32(buffer, 48).ShouldBe(2u);
        BitConverter.ToUInt64(buffer, 64).ShouldBe(0xfedffffful);
        BitConverter.ToUInt64(buffer, 72).ShouldBe(0xfef00000ul);
        BitConverter.ToUInt64(buffer, 80).ShouldBe(0xfffffffffffful);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioctl")]
    public void MapUnmapDma_Checks_AndCutMappingEnoent()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        using var memory = new ProcessPages(2 * ProcessPages.PageSize);
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        var map = new vfio_iommu_type1_dma_map { argsz = 32, flags = VfioUapi.VFIO_DMA_MAP_FLAG_VADDR, vaddr = (ulong)memory.Address, iova = 0x100000, size = 8192 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(-(int)Errno.EINVAL);
        map.flags = 0; // neither READ nor WRITE: accepted here
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(0);
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(-(int)Errno.EEXIST);
        var unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, iova = 0x100000, size = 4096 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap).ShouldBe(-(int)Errno.ENOENT);
        unmap.size.ShouldBe(0ul);
        unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, flags = VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL, iova = 0x100000 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap).ShouldBe(-(int)Errno.EINVAL);
        unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, flags = VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap).ShouldBe(0);
        unmap.size.ShouldBe(8192ul);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioctl")]
    public void Type1v1_CutsRangeEnds_PartialUnmapSucceeds()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        using var memory = new ProcessPages(4 * ProcessPages.PageSize);
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(0);
        var map = new vfio_iommu_type1_dma_map { argsz = 32, flags = 3, vaddr = (ulong)memory.Address, iova = 0x100000, size = 4 * 4096 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(0);
        var unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, iova = 0x101000, size = 4096 };
        Call(kernel, iommufd, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap).ShouldBe(0);
        unmap.size.ShouldBe(4096ul);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_unset_container")]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_release")]
    public void UnsetContainer_DropsReference_CompatIoasStaysInOpenIommufd()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle group = OpenOk(kernel, "/dev/vfio/2");
        SetContainer(kernel, group, iommufd).ShouldBe(0);
        SetContainer(kernel, group, iommufd).ShouldBe(-(int)Errno.EINVAL);
        kernel.Ioctl(group, VfioUapi.VFIO_GROUP_UNSET_CONTAINER, 0).ShouldBe(0);
        var cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_GET };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(0);
        SetContainer(kernel, group, iommufd).ShouldBe(0);
    }
}
