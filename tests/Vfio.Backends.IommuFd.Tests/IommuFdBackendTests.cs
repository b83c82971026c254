// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;
using Vfio.Samples.Edu;
using static Vfio.Backends.IommuFd.Tests.TestKit;

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>The iommufd backend on the simulator: attach/detach, sharing, ranges, replay, DMA and teardown.</summary>
public sealed class IommuFdBackendTests
{
    [Fact]
    public void AttachDetach_Edu_BindsAttachesAndReleasesEverything()
    {
        // The first run in a process creates what lives for the whole process (the simulator's and the interrupt
        // poller's own fds); the second must leave exactly what it found.
        Cycle();
        int fdsBefore = ProcessFdCount();
        Cycle();
        ProcessFdCount().ShouldBe(fdsBefore);
    }

    private static void Cycle()
    {
        using (SimulatedKernel kernel = Machine())
        {
            var backend = new IommuFdBackend(kernel);
            backend.Name.ShouldBe("iommufd");
            backend.Features.ShouldBe(IommuBackendFeatures.HotResetByDeviceIds | IommuBackendFeatures.DirtyTracking
                | IommuBackendFeatures.KernelChosenIova | IommuBackendFeatures.PassedFds);
            var space = new DmaSpace("edu");
            AttachedDevice device = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);

            var attached = device.ShouldBeOfType<IommuFdAttachedDevice>();
            attached.DeviceId.ShouldBeGreaterThan(0u);
            attached.HwptId.ShouldBeGreaterThan(0u);
            attached.IommuGroup.ShouldBe(2);
            attached.Device.Info.IsPci.ShouldBeTrue();
            attached.Device.ReadRegion32(0, 0).ShouldBe(0x010000edu);
            var container = attached.Container.ShouldBeOfType<IommuFdContainer>();
            container.Name.ShouldBe($"IOAS {container.IoasId}");
            container.HwptIds.ShouldBe([attached.HwptId]);
            container.Devices.ShouldBe([device]);
            space.Containers.ShouldBe([container]);
            backend.Containers.ShouldBe([container]);
            attached.HardwareInfo.DataType.ShouldBe(IommuUapi.IOMMU_HW_INFO_TYPE_INTEL_VTD);
            container.IommuHardwareInfo.ShouldBe(attached.HardwareInfo);
            kernel.GetState().IommuFdObjects.ShouldBe(3); // device, IOAS, auto HWPT

            device.Dispose();
            device.IsAttached.ShouldBeFalse();
            container.IsReleased.ShouldBeTrue();
            space.Containers.ShouldBeEmpty();
            backend.Containers.ShouldBeEmpty();
            backend.DetachDevice(device); // twice: nothing
            kernel.GetState().IommuFdObjects.ShouldBe(0);
            kernel.GetState().OpenFiles.ShouldBe(1); // the iommufd, until the backend goes

            space.Dispose();
            backend.Dispose();
            kernel.GetState().IsEmpty.ShouldBeTrue();
        }
    }

    [Fact]
    public void DmaRoundTrip_RamToEduToRam_ThenBlockedAfterUnmap_BufferUntouched()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("edu");
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
        DmaMapping mapping = buffer.Mapping;
        mapping.Iova.ShouldBeLessThanOrEqualTo(EduMask);
        kernel.GetState().DmaMappings.ShouldBe(1);

        RoundTrip(kernel, edu, buffer);

        space.Unmap(mapping.Iova);   // the buffer's memory stays until it is disposed
        kernel.GetState().DmaMappings.ShouldBe(0);
        buffer.Span.Slice(4096, 1024).Clear();
        using (var driver = new EduDriver(edu, useMmap: true))
        {
            driver.DmaFromDevice(0, mapping.Iova + 4096, 1024, EduTimeout);
        }
        buffer.Span.Slice(4096, 1024).ToArray().ShouldBe(new byte[1024]);
        DmaFault fault = kernel.DmaFaults.ShouldHaveSingleItem();
        fault.Device.ShouldBe(Edu0);
        fault.Iova.ShouldBe(mapping.Iova + 4096);
        fault.Write.ShouldBeTrue();
    }

    [Fact]
    public void TwoDevices_OneSpace_ShareOneIoas_TwoSpaces_TwoIoas()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using (var space = new DmaSpace("shared"))
        {
            AttachedDevice a = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
            AttachedDevice b = backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space);
            b.Container.ShouldBeSameAs(a.Container);
            space.Containers.Count.ShouldBe(1);
            var container = (IommuFdContainer)a.Container;
            container.Devices.Count.ShouldBe(2);
            // The second device reuses the first one's HWPT (same IOMMU): one IOAS, one HWPT, two devices.
            ((IommuFdAttachedDevice)b).HwptId.ShouldBe(((IommuFdAttachedDevice)a).HwptId);
            kernel.GetState().IommuFdObjects.ShouldBe(4);

            using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
            RoundTrip(kernel, b, buffer, seed: 7);

            a.Dispose();
            container.IsReleased.ShouldBeFalse();
            RoundTrip(kernel, b, buffer, seed: 8);
            b.Dispose();
            container.IsReleased.ShouldBeTrue();
            kernel.GetState().DmaMappings.ShouldBe(0);
            space.MappingCount.ShouldBe(1); // the space keeps its book
        }
        using var first = new DmaSpace("first");
        using var second = new DmaSpace("second");
        using AttachedDevice x = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), first);
        using AttachedDevice y = backend.AttachDevice(VfioDeviceSource.Pci(Edu1), second);
        x.Container.ShouldNotBeSameAs(y.Container);
        ((IommuFdContainer)x.Container).IoasId.ShouldNotBe(((IommuFdContainer)y.Container).IoasId);
        backend.Containers.Count.ShouldBe(2);
    }

    [Fact]
    public void IovaRanges_NarrowWhenADeviceAttaches_WidenWhenItLeaves()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("ranges");
        space.IovaRanges.ShouldBe([new IovaRange(0, ulong.MaxValue)]);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        var container = (IommuFdContainer)edu.Container;
        container.IovaRanges.Count.ShouldBeGreaterThan(1);
        container.IovaRanges.ShouldAllBe(r => !r.Contains(0xfee00000UL));
        container.IovaRanges[^1].Last.ShouldBeLessThan(ulong.MaxValue);
        space.IovaRanges.ShouldBe(container.IovaRanges);
        container.PageSizes.ShouldBe(4096UL);
        container.IovaAlignment.ShouldBeLessThanOrEqualTo(4096UL);

        // A fixed map inside the MSI window is refused by the space, before the kernel sees it.
        using var pages = new ProcessPages(ProcessPages.PageSize);
        Should.Throw<VfioDmaException>(() => space.MapAt(0xfee00000, pages.Address, 4096)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    [Fact]
    public void Replay_MapFirst_AttachLater_DeviceReachesTheMapping()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("replay");
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
        kernel.GetState().DmaMappings.ShouldBe(0);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        kernel.GetState().DmaMappings.ShouldBe(1);
        RoundTrip(kernel, edu, buffer);
    }

    [Fact]
    public void Replay_MappingInTheDevicesReservedRange_AttachFails_NothingLeft()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("replay");
        using var pages = new ProcessPages(ProcessPages.PageSize);
        space.MapAt(0xfee00000, pages.Address, pages.Size); // fine while the space has no device
        Should.Throw<VfioException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
        space.Containers.ShouldBeEmpty();
        kernel.GetState().IommuFdObjects.ShouldBe(0);
        kernel.GetState().DmaMappings.ShouldBe(0);
        kernel.GetState().OpenFiles.ShouldBe(1);
        space.Unmap(0xfee00000);
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        edu.IsAttached.ShouldBeTrue();
    }

    [Fact]
    public void Teardown_DisposingSpaceThenBackend_LeavesNothing()
    {
        Scenario(); // the first run may open the runtime's own lazily created fds
        int fdsBefore = ProcessFdCount();
        Scenario();
        ProcessFdCount().ShouldBe(fdsBefore);
    }

    private static void Scenario()
    {
        using (SimulatedKernel kernel = Machine())
        {
            var backend = new IommuFdBackend(kernel);
            var space = new DmaSpace("teardown");
            using var pages = new ProcessPages(4 * ProcessPages.PageSize);
            AttachedDevice a = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
            AttachedDevice b = backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space);
            space.Map(pages.Address, 8192, DmaAccess.Read, EduMask);
            space.Map(pages.Address + 8192, 8192, DmaAccess.Write, EduMask);
            kernel.GetState().DmaMappings.ShouldBe(2);
            space.Dispose();
            a.IsAttached.ShouldBeFalse();
            b.IsAttached.ShouldBeFalse();
            kernel.GetState().DmaMappings.ShouldBe(0);
            kernel.GetState().IommuFdObjects.ShouldBe(0);
            backend.Dispose();
            kernel.GetState().IsEmpty.ShouldBeTrue();
        }
    }

    [Fact]
    public void Teardown_DisposingBackendFirst_DetachesItsDevices()
    {
        using SimulatedKernel kernel = Machine();
        using var space = new DmaSpace("teardown");
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 4096);
        var backend = new IommuFdBackend(kernel);
        AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        backend.Dispose();
        edu.IsAttached.ShouldBeFalse();
        space.Containers.ShouldBeEmpty();
        kernel.GetState().IsEmpty.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space));
    }

    [Fact]
    public void CanAttach_SaysWhy()
    {
        using SimulatedKernel kernel = Machine(t => t.AddPci("0000:00:04.0", 4, null, driver: "nvme"));
        using var backend = new IommuFdBackend(kernel);
        backend.CanAttach(VfioDeviceSource.Pci(Edu0), out string reason).ShouldBeTrue();
        reason.ShouldContain("/dev/vfio/devices/vfio");
        backend.CanAttach(VfioDeviceSource.Pci("0000:00:04.0"), out reason).ShouldBeFalse();
        reason.ShouldContain("no VFIO cdev");

        using SimulatedKernel noIommu = Machine(t => t.IommuFd = false);
        using var other = new IommuFdBackend(noIommu);
        other.CanAttach(VfioDeviceSource.Pci(Edu0), out reason).ShouldBeFalse();
        reason.ShouldContain("CONFIG_IOMMUFD");
        using var passed = new IommuFdBackend(noIommu, new VfioOptions { IommuFd = "iommufd" });
        passed.CanAttach(VfioDeviceSource.Pci(Edu0), out _).ShouldBeTrue();
    }

    [Fact]
    public void IsAvailable_IsAboutTheMachine_NotADevice()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        backend.IsAvailable(out string reason).ShouldBeTrue();
        reason.ShouldContain("/dev/iommu");

        using SimulatedKernel noIommuFd = Machine(t => t.IommuFd = false);
        using var missing = new IommuFdBackend(noIommuFd);
        missing.IsAvailable(out reason).ShouldBeFalse();
        reason.ShouldContain("CONFIG_IOMMUFD");
        using var passed = new IommuFdBackend(noIommuFd, new VfioOptions { IommuFd = "iommufd" });
        passed.IsAvailable(out reason).ShouldBeTrue();
        reason.ShouldContain("Vfio:IommuFd");
    }
}
