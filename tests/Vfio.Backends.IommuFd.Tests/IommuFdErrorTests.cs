// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;
using static Vfio.Backends.IommuFd.Tests.TestKit;

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>Refusals and injected kernel failures: a typed exception with a useful message, and nothing left behind.</summary>
public sealed class IommuFdErrorTests
{
    public static TheoryData<string, int> AttachPathIoctls => new()
    {
        { "VFIO_DEVICE_BIND_IOMMUFD", (int)Errno.EIO },
        { "IOMMU_IOAS_ALLOC", (int)Errno.ENOMEM },
        { "IOMMU_GET_HW_INFO", (int)Errno.EIO },
        { "VFIO_DEVICE_ATTACH_IOMMUFD_PT", (int)Errno.EIO },
        { "IOMMU_IOAS_IOVA_RANGES", (int)Errno.EFAULT },
        { "VFIO_DEVICE_GET_INFO", (int)Errno.EIO },
        { "IOMMU_IOAS_MAP", (int)Errno.ENOMEM },
        { "IOMMU_HWPT_ALLOC", (int)Errno.ENOMEM },
    };

    private static uint Request(string name) => name switch
    {
        "VFIO_DEVICE_BIND_IOMMUFD" => VfioUapi.VFIO_DEVICE_BIND_IOMMUFD,
        "IOMMU_IOAS_ALLOC" => IommuUapi.IOMMU_IOAS_ALLOC,
        "IOMMU_GET_HW_INFO" => IommuUapi.IOMMU_GET_HW_INFO,
        "VFIO_DEVICE_ATTACH_IOMMUFD_PT" => VfioUapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        "IOMMU_IOAS_IOVA_RANGES" => IommuUapi.IOMMU_IOAS_IOVA_RANGES,
        "VFIO_DEVICE_GET_INFO" => VfioUapi.VFIO_DEVICE_GET_INFO,
        "IOMMU_IOAS_MAP" => IommuUapi.IOMMU_IOAS_MAP,
        "IOMMU_HWPT_ALLOC" => IommuUapi.IOMMU_HWPT_ALLOC,
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(AttachPathIoctls))]
    public void FaultAtEveryAttachIoctl_FirstDevice_TypedError_NothingLeft(string ioctl, int errno)
    {
        using SimulatedKernel kernel = Machine();
        kernel.IommuDirtyTracking = ioctl == "IOMMU_HWPT_ALLOC";
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("faults");
        using var pages = new ProcessPages(ProcessPages.PageSize);
        space.MapAt(0x10_0000, pages.Address, pages.Size); // replayed at join: IOMMU_IOAS_MAP is on the path
        long before = kernel.Faults.CallCount(Request(ioctl));
        kernel.Faults.FailIoctl(Request(ioctl), 1, (Errno)errno);

        VfioException e = Should.Throw<VfioException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        kernel.Faults.CallCount(Request(ioctl)).ShouldBeGreaterThan(before);
        e.Errno.ShouldBe((Errno)errno);
        e.Message.ShouldContain(ioctl == "IOMMU_IOAS_MAP" ? "IOAS" : ioctl);
        if (ioctl == "IOMMU_IOAS_MAP")
        {
            e.ShouldBeOfType<VfioDmaException>().Failure.ShouldBe(DmaMappingFailure.LimitReached);
            e.Hint!.ShouldContain("RLIMIT_MEMLOCK");
        }
        space.Containers.ShouldBeEmpty();
        backend.Containers.ShouldBeEmpty();
        SimulatedKernelState state = kernel.GetState();
        state.IommuFdObjects.ShouldBe(0);
        state.DmaMappings.ShouldBe(0);
        state.OpenFiles.ShouldBe(1); // only the backend's iommufd

        // Nothing is stuck: the same attach works now and the device does DMA.
        kernel.Faults.Clear();
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
        RoundTrip(kernel, edu, buffer);
        buffer.Dispose();
        edu.Dispose();
        space.Dispose();
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Theory]
    [MemberData(nameof(AttachPathIoctls))]
    public void FaultAtEveryAttachIoctl_SecondDevice_FirstKeepsWorking(string ioctl, int errno)
    {
        using SimulatedKernel kernel = Machine();
        kernel.IommuDirtyTracking = ioctl == "IOMMU_HWPT_ALLOC";
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("faults");
        using AttachedDevice first = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
        SimulatedKernelState before = kernel.GetState();
        IReadOnlyList<IovaRange> ranges = space.IovaRanges;
        kernel.Faults.FailIoctl(Request(ioctl), 1, (Errno)errno);

        if (ioctl is "IOMMU_IOAS_ALLOC" or "IOMMU_IOAS_MAP" or "IOMMU_HWPT_ALLOC")
        {
            // The second device joins the existing IOAS and its HWPT: none of these is issued.
            using AttachedDevice second = backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space);
            second.Container.ShouldBeSameAs(first.Container);
            return;
        }
        Should.Throw<VfioException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space)).Errno.ShouldBe((Errno)errno);
        kernel.GetState().ShouldBe(before);
        space.IovaRanges.ShouldBe(ranges);
        first.Container.Devices.ShouldBe([first]);
        RoundTrip(kernel, first, buffer);
    }

    [Fact]
    public void NoDevIommu_BackendUnavailable_NothingOpen()
    {
        using SimulatedKernel kernel = Machine(t => t.IommuFd = false);
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        e.Backend.ShouldBe("iommufd");
        e.MissingFeature.ShouldBe("CONFIG_IOMMUFD (/dev/iommu)");
        e.Message.ShouldContain("iommufd");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void NoCdev_BackendUnavailable_NothingOpenButTheIommufd()
    {
        using SimulatedKernel kernel = Machine(t => t.DeviceCdev = false);
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        e.MissingFeature.ShouldBe($"CONFIG_VFIO_DEVICE_CDEV (no /dev/vfio/devices entry for {Edu0})");
        kernel.GetState().OpenFiles.ShouldBe(1);
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void NotBoundToVfio_DeviceUnusable_SaysHowToBind()
    {
        using SimulatedKernel kernel = Machine(t => t.AddPci("0000:00:04.0", 4, null, driver: "nvme"));
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci("0000:00:04.0"), space));
        e.Message.ShouldContain("nvme");
        e.Hint!.ShouldContain("driver_override");
        e.Hint!.ShouldContain("vfio-pci");
        space.Containers.ShouldBeEmpty();
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void GroupNotViable_BindEperm_NamesTheMemberOnAHostDriverAndHowToFreeIt()
    {
        // Edu1's group 3 also holds a device on a host driver (which claims DMA ownership of the group).
        using SimulatedKernel kernel = Machine(t => t.AddPci("0000:00:03.1", 3, null, driver: "e1000e"));
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space));
        e.Operation.ShouldBe("VFIO_DEVICE_BIND_IOMMUFD");
        e.Errno.ShouldBe(Errno.EPERM);
        e.ObjectName.ShouldBe(Edu1);
        e.Message.ShouldContain("IOMMU group 3 is not viable: 0000:00:03.1 (bound to e1000e) is bound to a host driver");
        e.Hint!.ShouldContain("echo 0000:00:03.1 > /sys/bus/pci/devices/0000:00:03.1/driver/unbind");
        e.Hint!.ShouldContain("echo vfio-pci > /sys/bus/pci/devices/0000:00:03.1/driver_override");
        space.Containers.ShouldBeEmpty();
        kernel.GetState().OpenFiles.ShouldBe(1);   // the iommufd; the cdev was closed
        // The device in a viable group still attaches.
        using (backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space))
        {
        }
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void GroupNotViable_PassedCdevFd_StillNamesTheMember()
    {
        using SimulatedKernel kernel = Machine(t => t.AddPci("0000:00:03.1", 3, null, driver: "e1000e"));
        VfioException.ThrowIfFailed(kernel.Open("/dev/vfio/devices/vfio1", OpenFlags.ReadWrite, out SafeFileHandle cdev), "open", "vfio1");
        using (cdev)
        {
            using var backend = new IommuFdBackend(kernel);
            using var space = new DmaSpace();
            Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.FromDeviceFd(cdev, Edu1), space))
                .Message.ShouldContain("0000:00:03.1 (bound to e1000e)");
            cdev.IsClosed.ShouldBeFalse();   // borrowed
        }
    }

    [Fact]
    public void BindEperm_WithoutAMemberOnAHostDriver_IsTheGeneralOwnershipMessage()
    {
        using SimulatedKernel kernel = Machine(t => t.InterruptRemapping = false);
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        e.Errno.ShouldBe(Errno.EPERM);
        e.Message.ShouldNotContain("not viable");
        e.Hint!.ShouldContain("iommufd.allow_unsafe_interrupts=1");
    }

    [Fact]
    public void NoSuchDevice_DeviceUnusable()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci("0000:00:1f.0"), space))
            .Message.ShouldContain("0000:00:1f.0");
    }

    [Fact]
    public void SameDeviceTwice_DeviceUnusable_FirstUntouched()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("one");
        using var other = new DmaSpace("two");
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        SimulatedKernelState before = kernel.GetState();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        e.Message.ShouldContain("already attached");
        Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(VfioDeviceSource.Pci("00:02.0"), other));
        kernel.GetState().ShouldBe(before);
        other.Containers.ShouldBeEmpty();
        edu.IsAttached.ShouldBeTrue();
        edu.Device.ReadRegion32(0, 0).ShouldBe(0x010000edu);
    }

    [Fact]
    public void SameDeviceThroughAnotherBackendInstance_BindRefused_Typed()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var second = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        using var other = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        SimulatedKernelState before = kernel.GetState();
        Should.Throw<VfioDeviceUnusableException>(() => second.AttachDevice(VfioDeviceSource.Pci(Edu0), other))
            .Operation.ShouldBe("VFIO_DEVICE_BIND_IOMMUFD");
        other.Containers.ShouldBeEmpty();
        // The second backend's iommufd is the only new file; no object of it remains.
        kernel.GetState().OpenFiles.ShouldBe(before.OpenFiles + 1);
        kernel.GetState().IommuFdObjects.ShouldBe(before.IommuFdObjects);
        Should.Throw<ArgumentException>(() => second.DetachDevice(edu)).Message.ShouldContain("another iommufd backend instance");
        edu.IsAttached.ShouldBeTrue();
    }

    [Fact]
    public void NameWithSlash_Refused()
    {
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Platform("../../evil")).Message.ShouldContain("'/'");
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Pci("0000:00:02.0/../x"));
    }

    [Fact]
    public void BadMaps_RefusedByTheSpace_KernelUntouched()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        using var pages = new ProcessPages(4 * ProcessPages.PageSize);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        space.MapAt(0x20_0000, pages.Address, 0x2000);
        long maps = kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_MAP);

        Should.Throw<VfioDmaException>(() => space.MapAt(0x20_1000, pages.Address, 0x2000)).Failure.ShouldBe(DmaMappingFailure.Overlap);
        Should.Throw<VfioDmaException>(() => space.MapAt(0x30_0800, pages.Address, 0x1000)).Failure.ShouldBe(DmaMappingFailure.Misaligned);
        Should.Throw<VfioDmaException>(() => space.MapAt(0x30_0000, pages.Address + 1, 0x1000)).Failure.ShouldBe(DmaMappingFailure.Misaligned);
        Should.Throw<VfioDmaException>(() => space.MapAt(0x30_0000, pages.Address, 0x1800)).Failure.ShouldBe(DmaMappingFailure.Misaligned);
        Should.Throw<VfioDmaException>(() => space.MapAt(0xfee0_0000, pages.Address, 0x1000)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        Should.Throw<VfioDmaException>(() => space.MapAt(1UL << 62, pages.Address, 0x1000)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_MAP).ShouldBe(maps);
        kernel.GetState().DmaMappings.ShouldBe(1);
        space.MappingCount.ShouldBe(1);
        ((IommuFdContainer)edu.Container).IovaRanges.ShouldAllBe(r => !r.Contains(0xfee0_0000));
        Should.Throw<VfioDmaException>(() => space.Unmap(0x40_0000)).Failure.ShouldBe(DmaMappingFailure.NotMapped);
    }

    [Fact]
    public void MemlockLimit_LimitReached()
    {
        using SimulatedKernel kernel = Machine(t => t.MemlockLimit = 4 * 4096);
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        using var pages = new ProcessPages(8 * ProcessPages.PageSize);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        space.Map(pages.Address, 4 * 4096, DmaAccess.ReadWrite, EduMask);
        var e = Should.Throw<VfioDmaException>(() => space.Map(pages.Address + 4 * 4096, 4096, DmaAccess.ReadWrite, EduMask));
        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.Errno.ShouldBe(Errno.ENOMEM);
        e.Hint!.ShouldContain("RLIMIT_MEMLOCK");
        space.MappingCount.ShouldBe(1);
        kernel.GetState().DmaMappings.ShouldBe(1);
    }

    [Fact]
    public unsafe void UnmapOfAMappingRemovedBehindTheSpace_NotMappedWithEnoent()
    {
        using SimulatedKernel kernel = Machine();
        kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle iommufd).ShouldBe(0);
        using var view = new Microsoft.Win32.SafeHandles.SafeFileHandle(iommufd.DangerousGetHandle(), ownsHandle: false);
        using var store = new VfioFdStore(kernel);
        store.Add("iommufd", iommufd);
        using var backend = new IommuFdBackend(kernel, new VfioOptions { IommuFd = "iommufd" }, store);
        using var space = new DmaSpace("book");
        using var pages = new ProcessPages(ProcessPages.PageSize);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        DmaMapping mapping = space.Map(pages.Address, pages.Size, DmaAccess.ReadWrite, EduMask);
        var all = new iommu_ioas_unmap { size = 24, ioas_id = ((IommuFdContainer)edu.Container).IoasId, iova = 0, length = ulong.MaxValue };
        kernel.Ioctl(view, IommuUapi.IOMMU_IOAS_UNMAP, &all).ShouldBe(0); // someone else empties the IOAS

        // The space passes its container's typed error through.
        var e = Should.Throw<VfioDmaException>(() => space.Unmap(mapping.Iova));
        e.Operation.ShouldBe("IOMMU_IOAS_UNMAP");
        e.Failure.ShouldBe(DmaMappingFailure.NotMapped);
        e.Errno.ShouldBe(Errno.ENOENT);
        e.Message.ShouldContain("something else unmapped it");
        space.MappingCount.ShouldBe(1);
    }
}
