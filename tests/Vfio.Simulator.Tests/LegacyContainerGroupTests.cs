// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>The legacy container and group state machines (drivers/vfio/container.c, drivers/vfio/group.c) over a Type1 machine.</summary>
public sealed class LegacyContainerGroupTests
{
    private const int EINVAL = -(int)Errno.EINVAL;

    [Fact]
    [Spec("drivers/vfio/container.c vfio_fops_unl_ioctl")]
    public void GetApiVersion_AnyState_ReturnsZero()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        m.Kernel.Ioctl(container, VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_container_ioctl_check_extension")]
    public void CheckExtension_BeforeSetIommu_PollsType1Statelessly()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1_NESTING_IOMMU).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_UNMAP_ALL).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_DMA_CC_IOMMU).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_UPDATE_VADDR).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_SPAPR_TCE_IOMMU).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_NOIOMMU_IOMMU).ShouldBe(0);
        m.CheckExtension(container, 1234).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_container_ioctl_check_extension")]
    public void CheckExtension_AfterSetIommu_OnlyType1AnswersWithItsState()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.CheckExtension(container, VfioUapi.VFIO_UPDATE_VADDR).ShouldBe(1);
            m.CheckExtension(container, VfioUapi.VFIO_DMA_CC_IOMMU).ShouldBe(0, "QEMU's VT-d has no snoop control");
            m.CheckExtension(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(1);
            m.CheckExtension(container, VfioUapi.VFIO_UNMAP_ALL).ShouldBe(1);
            m.CheckExtension(container, VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU).ShouldBe(0);
            m.CheckExtension(container, VfioUapi.VFIO_EEH).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_fops_unl_ioctl")]
    public void SetIommu_NoGroups_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        m.SetIommu(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_fops_unl_ioctl")]
    public void SetIommu_Twice_Einval()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.SetIommu(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(EINVAL);
        }
    }

    [Theory]
    [InlineData(VfioUapi.VFIO_SPAPR_TCE_IOMMU)]
    [InlineData(VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU)]
    [InlineData(VfioUapi.VFIO_NOIOMMU_IOMMU)]
    [InlineData(VfioUapi.VFIO_DMA_CC_IOMMU)]
    [InlineData(VfioUapi.VFIO_UPDATE_VADDR)]
    [InlineData(77u)]
    [Spec("drivers/vfio/container.c vfio_ioctl_set_iommu")]
    public void SetIommu_TypeNoBackendOffers_Enodev(uint type)
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetIommu(container, type).ShouldBe(-(int)Errno.ENODEV);
        // Still no backend: the container's other ioctls are EINVAL and SET_IOMMU may be retried.
        m.Map(container, 0x10000, 0, 4096).ShouldBe(EINVAL);
        m.SetIommu(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_ioctl_set_iommu")]
    public void SetIommu_UnmapAllAsType_Type1OffersItButOpenRejects_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetIommu(container, VfioUapi.VFIO_UNMAP_ALL).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_container_ioctl_check_extension")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
    public void SetIommu_Nesting_VtdCannotNest_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetIommu(container, VfioUapi.VFIO_TYPE1_NESTING_IOMMU).ShouldBe(EINVAL);
        m.ContainerOf(container).Driver.ShouldBeNull();
        m.Device(LegacyMachine.Dev2).Dma.ShouldBeNull();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SetIommu_NoInterruptRemapping_Eperm_AsTestbedIntremapOff()
    {
        using var m = new LegacyMachine(t => t.InterruptRemapping = false);
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetIommu(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(-(int)Errno.EPERM);
        m.SetIommu(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(-(int)Errno.EPERM);
        m.ContainerOf(container).Driver.ShouldBeNull();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
    public void SetIommu_NoInterruptRemappingButAllowUnsafeInterrupts_Succeeds()
    {
        using var m = new LegacyMachine(t => { t.InterruptRemapping = false; t.AllowUnsafeInterrupts = true; });
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        container.Dispose();
        group.Dispose();
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_fops_unl_ioctl")]
    public void ContainerIoctl_UnknownAfterSetIommu_Enotty_BeforeEinval()
    {
        using var m = new LegacyMachine();
        uint enable = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 15);
        using (SafeFileHandle empty = m.OpenContainer())
        {
            m.Kernel.Ioctl(empty, enable, 0).ShouldBe(EINVAL);
        }
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.Kernel.Ioctl(container, enable, 0).ShouldBe(-(int)Errno.ENOTTY);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_open")]
    public void OpenGroup_Twice_Ebusy_ThenAfterCloseSucceeds()
    {
        using var m = new LegacyMachine();
        SafeFileHandle group = m.OpenGroup(2);
        m.Kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out SafeFileHandle second).ShouldBe(-(int)Errno.EBUSY);
        second.Dispose();
        group.Dispose();
        using SafeFileHandle third = m.OpenGroup(2);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
    public void GroupGetStatus_ViableThenContainerSet()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.GroupStatus(group, out uint flags).ShouldBe(0);
        flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
        m.SetContainer(group, container).ShouldBe(0);
        m.GroupStatus(group, out flags).ShouldBe(0);
        flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE | VfioUapi.VFIO_GROUP_FLAGS_CONTAINER_SET);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
    public void GroupGetStatus_ArgszTooSmall_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle group = m.OpenGroup(2);
        m.GroupStatus(group, out _, argsz: 7).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void Group_SecondDeviceBoundToKernelDriver_NotViable_SetContainerEperm()
    {
        using var m = new LegacyMachine(t => t
            .AddPci("0000:00:04.0", iommuGroup: 4, new InertDevice())
            .AddPci("0000:00:04.1", iommuGroup: 4, model: null, driver: "nvme"));
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(4);
        m.GroupStatus(group, out uint flags).ShouldBe(0);
        flags.ShouldBe(0u);
        m.SetContainer(group, container).ShouldBe(-(int)Errno.EPERM);
        m.GroupStatus(group, out flags).ShouldBe(0);
        flags.ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
    public void Group_SecondDeviceWithoutDriver_StaysViable()
    {
        using var m = new LegacyMachine(t => t
            .AddPci("0000:00:04.0", iommuGroup: 4, new InertDevice())
            .AddPci("0000:00:04.1", iommuGroup: 4, model: null, driver: ""));
        using SafeFileHandle group = m.OpenGroup(4);
        m.GroupStatus(group, out uint flags).ShouldBe(0);
        flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SetContainer_FdNotOpen_Ebadf()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainerFd(group, -1).ShouldBe(-(int)Errno.EBADF);
        m.SetContainerFd(group, 1_000_000).ShouldBe(-(int)Errno.EBADF);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SetContainer_NullPointer_Efault()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle group = m.OpenGroup(2);
        m.Kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, 0).ShouldBe(-(int)Errno.EFAULT);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SetContainer_FdOfAnotherKind_Ebadfd()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle group = m.OpenGroup(2);
        using SafeFileHandle other = m.OpenGroup(3);
        m.SetContainer(group, other).ShouldBe(-(int)Errno.EBADFD);
        m.Kernel.Open("/dev/null", OpenFlags.ReadWrite, out SafeFileHandle devNull).ShouldBe(0);
        using (devNull)
        {
            m.SetContainer(group, devNull).ShouldBe(-(int)Errno.EBADFD);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SetContainer_AlreadyAttached_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle another = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetContainer(group, container).ShouldBe(EINVAL);
        m.SetContainer(group, another).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_unset_container")]
    public void UnsetContainer_NotAttached_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle group = m.OpenGroup(2);
        m.UnsetContainer(group).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_unset_container")]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    public void UnsetContainer_DeviceFdOpen_Ebusy_ThenSucceedsAfterClose()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            m.UnsetContainer(group).ShouldBe(-(int)Errno.EBUSY);
            device.Dispose();
            m.UnsetContainer(group).ShouldBe(0);
            m.GroupStatus(group, out uint flags).ShouldBe(0);
            flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void GetDeviceFd_NotAttachedOrNoIommuSet_Einval()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle d1).ShouldBe(EINVAL);
        d1.Dispose();
        m.SetContainer(group, container).ShouldBe(0);
        m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle d2).ShouldBe(EINVAL);
        d2.Dispose();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void GetDeviceFd_NameNotInGroup_Enodev()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.GetDeviceFd(group, LegacyMachine.Dev3, out SafeFileHandle d).ShouldBe(-(int)Errno.ENODEV);
            d.Dispose();
            m.GetDeviceFd(group, "0000:00:02", out d).ShouldBe(-(int)Errno.ENODEV);
            d.Dispose();
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void GetDeviceFd_PciNameWithOptions_EinvalWithoutSriov()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.GetDeviceFd(group, LegacyMachine.Dev2 + " vf_token=2ab74924-c335-45f4-9b16-8569e5b08258", out SafeFileHandle d).ShouldBe(EINVAL);
            d.Dispose();
            m.GetDeviceFd(group, LegacyMachine.Dev2 + "x", out d).ShouldBe(-(int)Errno.ENODEV);
            d.Dispose();
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    public void GetDeviceFd_ReturnsAnonymousDeviceFd_ServedByTheBusDriver()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            using (device)
            {
                m.Kernel.GetStatus(device, out FileStatus status).ShouldBe(0);
                status.Type.ShouldBe(FileType.AnonymousInode);
                m.Kernel.ReadLink($"/proc/self/fd/{device.DangerousGetHandle()}", out string link).ShouldBe(0);
                link.ShouldBe("anon_inode:[vfio-device]");
                m.Kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(-(int)Errno.ENOTTY);
            }
        }
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_fops_unl_ioctl")]
    public void CheckExtension_GroupsAttachedNoBackend_StillPollsType1()
    {
        using var m = new LegacyMachine();
        using SafeFileHandle container = m.OpenContainer();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_UPDATE_VADDR).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_NOIOMMU_IOMMU).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void GetDeviceFd_Twice_TwoFdsOneOpenDevice()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            int a = m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle d1);
            int b = m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle d2);
            a.ShouldBeGreaterThanOrEqualTo(0);
            b.ShouldBeGreaterThanOrEqualTo(0);
            a.ShouldNotBe(b);
            m.Device(LegacyMachine.Dev2).OpenCount.ShouldBe(2);
            d1.Dispose();
            d2.Dispose();
            m.Kernel.OpenFileCount.ShouldBe(2);
            m.Device(LegacyMachine.Dev2).OpenCount.ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    public void SecondGroup_JoinsContainerThatHasType1_WithoutAnotherSetIommu()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group2) = m.Ready();
        using (container)
        using (group2)
        using (SafeFileHandle group3 = m.OpenGroup(3))
        {
            m.Device(LegacyMachine.Dev3).Dma.ShouldBeNull();
            m.SetContainer(group3, container).ShouldBe(0);
            m.Device(LegacyMachine.Dev3).Dma.ShouldBeSameAs(m.Type1(container));
            m.GetDeviceFd(group3, LegacyMachine.Dev3, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            device.Dispose();
            m.ContainerOf(container).Groups.Count.ShouldBe(2);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_set_container")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
    public void SecondGroup_WhileAVaddrIsInvalidated_Ebusy()
    {
        using var m = new LegacyMachine();
        using var buffer = new ProcessPages(0x2000);
        (SafeFileHandle container, SafeFileHandle group2) = m.Ready();
        using (container)
        using (group2)
        using (SafeFileHandle group3 = m.OpenGroup(3))
        {
            m.Map(container, buffer.Vaddr, 0x100000, 0x2000).ShouldBe(0);
            m.Unmap(container, 0x100000, 0x2000, out _, VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR).ShouldBe(0);
            m.SetContainer(group3, container).ShouldBe(-(int)Errno.EBUSY);
            m.GroupStatus(group3, out uint flags).ShouldBe(0);
            flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
            m.Map(container, buffer.Vaddr, 0x100000, 0x2000, VfioUapi.VFIO_DMA_MAP_FLAG_VADDR).ShouldBe(0);
            m.SetContainer(group3, container).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    [Spec("drivers/vfio/container.c struct vfio_container")]
    public void LastGroupLeaving_ReleasesBackendAndMappings_ContainerBackToEmpty()
    {
        using var m = new LegacyMachine();
        using var buffer = new ProcessPages(0x4000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        using (group)
        {
            m.Map(container, buffer.Vaddr, 0x100000, 0x4000).ShouldBe(0);
            m.Kernel.LockedVmPages.ShouldBe(4UL);
            m.UnsetContainer(group).ShouldBe(0);
            m.Kernel.LockedVmPages.ShouldBe(0UL);
            m.Device(LegacyMachine.Dev2).Dma.ShouldBeNull();
            m.ContainerOf(container).Driver.ShouldBeNull();
            m.CheckExtension(container, VfioUapi.VFIO_UPDATE_VADDR).ShouldBe(0);
            m.Map(container, buffer.Vaddr, 0x100000, 0x4000).ShouldBe(EINVAL);
            // Re-attaching needs SET_IOMMU again, and the new backend starts empty.
            m.SetContainer(group, container).ShouldBe(0);
            m.Map(container, buffer.Vaddr, 0x100000, 0x4000).ShouldBe(EINVAL);
            m.SetIommu(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(0);
            m.Type1(container).MappingCount.ShouldBe(0);
            m.Type1(container).IsV2.ShouldBeFalse();
            m.Map(container, buffer.Vaddr, 0x100000, 0x4000).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    public void ClosingContainerFd_GroupsKeepContainerAndMappings()
    {
        using var m = new LegacyMachine();
        using var buffer = new ProcessPages(0x1000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (group)
        {
            m.Map(container, buffer.Vaddr, 0x200000, 0x1000).ShouldBe(0);
            container.Dispose();
            m.Kernel.OpenFileCount.ShouldBe(1);
            m.Device(LegacyMachine.Dev2).DmaWrite(0x200000, [1, 2, 3]).ShouldBeTrue();
            buffer.Span[..3].ToArray().ShouldBe(new byte[] { 1, 2, 3 });
            m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            device.Dispose();
        }
        // The group's last reference went: the container is released with it.
        m.Kernel.OpenFileCount.ShouldBe(0);
        m.Device(LegacyMachine.Dev2).Dma.ShouldBeNull();
        m.Kernel.LockedVmPages.ShouldBe(0UL);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    [Spec("drivers/vfio/group.c vfio_group_fops_open")]
    public void ClosingGroupFd_WithDeviceFdOpen_StaysAttachedAndOpen()
    {
        using var m = new LegacyMachine();
        using var buffer = new ProcessPages(0x1000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        {
            m.Map(container, buffer.Vaddr, 0x300000, 0x1000).ShouldBe(0);
            m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
            group.Dispose();
            // The device fd holds the group file: it is still open (EBUSY) and still attached, DMA still works.
            m.Kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out SafeFileHandle again).ShouldBe(-(int)Errno.EBUSY);
            again.Dispose();
            m.Device(LegacyMachine.Dev2).DmaWrite(0x300000, [9]).ShouldBeTrue();
            m.ContainerOf(container).Groups.Count.ShouldBe(1);
            device.Dispose();
            // Last reference: detached, the backend released, the node can be opened again.
            using SafeFileHandle reopened = m.OpenGroup(2);
            m.ContainerOf(container).Driver.ShouldBeNull();
            m.GroupStatus(reopened, out uint flags).ShouldBe(0);
            flags.ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE);
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    public void ClosingGroupFd_NoDevices_DetachesAndReleasesMappings()
    {
        using var m = new LegacyMachine();
        using var buffer = new ProcessPages(0x1000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        using (container)
        {
            m.Map(container, buffer.Vaddr, 0x300000, 0x1000).ShouldBe(0);
            group.Dispose();
            m.Kernel.Ioctl(container, VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(0);
            m.ContainerOf(container).Driver.ShouldBeNull();
            m.Kernel.LockedVmPages.ShouldBe(0UL);
            m.Device(LegacyMachine.Dev2).DmaWrite(0x300000, [9]).ShouldBeFalse();
        }
    }
}
