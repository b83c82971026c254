// SPDX-License-Identifier: MIT
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;
using static Vfio.Backends.IommuFd.Tests.TestKit;

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>Dirty tracking, passed fds and the allocation-free map/unmap path.</summary>
public sealed class IommuFdFeatureTests
{
    [Fact]
    public void DirtyTracking_EduWriteMarksItsPage_ReadClears()
    {
        using SimulatedKernel kernel = Machine();
        kernel.IommuDirtyTracking = true;
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("dirty");
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        var attached = (IommuFdAttachedDevice)edu;
        attached.HardwareInfo.SupportsDirtyTracking.ShouldBeTrue();
        var container = (IommuFdContainer)edu.Container;
        container.Features.HasFlag(IommuBackendFeatures.DirtyTracking).ShouldBeTrue();
        kernel.Faults.CallCount(IommuUapi.IOMMU_HWPT_ALLOC).ShouldBe(1);

        // A second device joins the dirty-tracking HWPT rather than getting an automatic one.
        using (AttachedDevice second = backend.AttachDevice(VfioDeviceSource.Pci(Edu1), space))
        {
            ((IommuFdAttachedDevice)second).HwptId.ShouldBe(attached.HwptId);
            kernel.Faults.CallCount(IommuUapi.IOMMU_HWPT_ALLOC).ShouldBe(1);
        }

        DmaBuffer buffer = DmaBuffer.Allocate(space, 4 * 4096, DmaAccess.ReadWrite, EduMask);
        DmaMapping mapping = buffer.Mapping;
        container.StartDirtyTracking();
        RoundTrip(kernel, edu, buffer); // reads page 0, writes page 1
        ulong[] bitmap = new ulong[1];
        container.ReadDirtyBitmap(mapping.Iova, mapping.Size, 4096, bitmap);
        bitmap[0].ShouldBe(0b0010UL);
        bitmap[0] = 0;
        container.ReadDirtyBitmap(mapping.Iova, mapping.Size, 4096, bitmap);
        bitmap[0].ShouldBe(0UL); // read-and-clear
        container.StopDirtyTracking();
        Should.Throw<ArgumentException>(() => container.ReadDirtyBitmap(mapping.Iova, mapping.Size, 4096, Span<ulong>.Empty));

        buffer.Dispose();
        edu.Dispose();
        space.Dispose();
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue(); // the allocated HWPT was destroyed with the IOAS
    }

    [Fact]
    public void DirtyTracking_NotOfferedWithoutTheIommuCapability()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        ((IommuFdAttachedDevice)edu).HardwareInfo.SupportsDirtyTracking.ShouldBeFalse();
        edu.Container.Features.HasFlag(IommuBackendFeatures.DirtyTracking).ShouldBeFalse();
        Should.Throw<NotSupportedException>(() => edu.Container.StartDirtyTracking()).Message.ShouldContain("IOMMU_HWPT_ALLOC_DIRTY_TRACKING");
        kernel.Faults.CallCount(IommuUapi.IOMMU_HWPT_ALLOC).ShouldBe(0);
    }

    [Fact]
    public void DirtyTracking_OptedOut_AutomaticHwpt()
    {
        using SimulatedKernel kernel = Machine();
        kernel.IommuDirtyTracking = true;
        using var backend = new IommuFdBackend(kernel) { UseDirtyTrackingHwpts = false };
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        edu.Container.Features.HasFlag(IommuBackendFeatures.DirtyTracking).ShouldBeFalse();
        kernel.Faults.CallCount(IommuUapi.IOMMU_HWPT_ALLOC).ShouldBe(0);
    }

    [Fact]
    public void PassedFds_WorkerWithoutDeviceNodes_AttachesAndDoesDma()
    {
        using SimulatedKernel kernel = Machine();
        string path = Path.Combine(Path.GetTempPath(), $"vfio-iommufd-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        try
        {
            using var launcher = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            launcher.Connect(new UnixDomainSocketEndPoint(path));
            using Socket worker = listener.Accept();

            // The launcher opens the nodes with privilege and sends them by name.
            kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle iommufd).ShouldBe(0);
            kernel.Open("/dev/vfio/devices/vfio0", OpenFlags.ReadWrite, out SafeFileHandle cdev).ShouldBe(0);
            FdPassing.Send(launcher, [new NamedFd("iommufd", iommufd), new NamedFd("edu", cdev)]);
            iommufd.Dispose();
            cdev.Dispose();

            // The worker may open no /dev node at all.
            kernel.DenyDeviceNodes = true;
            using var store = new VfioFdStore(kernel);
            using (ReceivedFds received = FdPassing.Receive(worker, TimeSpan.FromSeconds(5)))
            {
                store.Add(received);
            }
            var options = new VfioOptions { IommuFd = "iommufd" };
            options.DeviceFds[Edu0] = "edu";
            var backend = new IommuFdBackend(kernel, options, store);
            backend.CanAttach(VfioDeviceSource.Pci(Edu0), out _).ShouldBeTrue();
            var space = new DmaSpace("worker");
            AttachedDevice edu = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
            edu.IommuGroup.ShouldBe(2);
            using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
            RoundTrip(kernel, edu, buffer);

            space.Dispose();
            backend.Dispose();
            // Borrowed: the store still holds both fds, open; the device stays bound until the cdev closes.
            store.Names.ShouldBe(["edu", "iommufd"], ignoreOrder: true);
            kernel.GetState().OpenFiles.ShouldBe(2);
            kernel.GetState().DmaMappings.ShouldBe(0);
        }
        finally
        {
            File.Delete(path);
        }
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void FromDeviceFd_OwnedOrBorrowed_AttachesWithoutSysfsCdevLookup()
    {
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        kernel.Open("/dev/vfio/devices/vfio0", OpenFlags.ReadWrite, out SafeFileHandle owned).ShouldBe(0);
        kernel.Open("/dev/vfio/devices/vfio1", OpenFlags.ReadWrite, out SafeFileHandle borrowed).ShouldBe(0);
        AttachedDevice a = backend.AttachDevice(VfioDeviceSource.FromDeviceFd(owned, Edu0, ownsHandle: true), space);
        AttachedDevice b = backend.AttachDevice(VfioDeviceSource.FromDeviceFd(borrowed, Edu1), space);
        b.Container.ShouldBeSameAs(a.Container);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduMask);
        RoundTrip(kernel, a, buffer, seed: 1);
        RoundTrip(kernel, b, buffer, seed: 2);
        a.Dispose();
        b.Dispose();
        owned.IsClosed.ShouldBeTrue();
        borrowed.IsClosed.ShouldBeFalse();
        borrowed.Dispose();
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void MapUnmap_SteadyState_AllocatesNothing()
    {
        // The whole path through the simulator: DmaSpace, the iommufd container, the kernel port and the IOAS model
        // with an attached device (pinning and memlock accounting), which pools its areas and page sets.
        using SimulatedKernel kernel = Machine();
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace("alloc");
        using var pages = new ProcessPages(4 * ProcessPages.PageSize);
        using AttachedDevice a = backend.AttachDevice(VfioDeviceSource.Pci(Edu0), space);
        space.EnsureCapacity(16);
        for (int i = 0; i < 100; i++)
        {
            DmaMapping warm = space.Map(pages.Address, pages.Size, DmaAccess.ReadWrite, EduMask);
            space.Unmap(warm.Iova);
        }
        long maps = kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_MAP);
        long unmaps = kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_UNMAP);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            DmaMapping mapping = space.Map(pages.Address, pages.Size, DmaAccess.ReadWrite, EduMask);
            space.Unmap(mapping.Iova);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        allocated.ShouldBe(0L);
        kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_MAP).ShouldBe(maps + 1000);
        kernel.Faults.CallCount(IommuUapi.IOMMU_IOAS_UNMAP).ShouldBe(unmaps + 1000);
        kernel.GetState().DmaMappings.ShouldBe(0);
    }
}
