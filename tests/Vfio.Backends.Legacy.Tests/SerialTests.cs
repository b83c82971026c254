// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>Tests that count the process's fds or its allocations: they run alone.</summary>
[CollectionDefinition(nameof(Serial), DisableParallelization = true)]
public sealed class Serial;

/// <summary>Teardown to the last fd, passed fds, iommufd as container, and the allocation-free map path.</summary>
[Collection(nameof(Serial))]
public sealed class SerialTests
{
    [Fact]
    public void Teardown_LeavesTheKernelEmpty_AndTheProcessFdCountWhereItStarted()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        int before = Kit.ProcessFdCount();
        var backend = new LegacyBackend(kernel);
        var space = new DmaSpace("teardown");
        AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x2000, DmaAccess.ReadWrite, Kit.EduMask);
        Kit.RoundTripThrough(a, buffer);
        Kit.ProcessFdCount().ShouldBeGreaterThanOrEqualTo(before + 5);

        a.Dispose();
        b.Dispose();
        space.Dispose();
        backend.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
        Kit.ProcessFdCount().ShouldBe(before);
    }

    [Fact]
    public void PassedFds_AWorkerWithoutDeviceNodes_AttachesWithContainerAndGroupFdsFromALauncher()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        (System.Net.Sockets.Socket launcherSide, System.Net.Sockets.Socket workerSide) = Kit.SocketPair();
        using (launcherSide)
        using (workerSide)
        {
            // The launcher opens the nodes and sends them.
            kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container).ShouldBe(0);
            kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out SafeFileHandle group).ShouldBe(0);
            using (container)
            using (group)
            {
                FdPassing.Send(launcherSide, [new NamedFd("container", container), new NamedFd("group2", group)]);
            }

            // The worker may open no /dev node.
            kernel.DenyDeviceNodes = true;
            using var store = new VfioFdStore(kernel);
            using (ReceivedFds received = FdPassing.Receive(workerSide, TimeSpan.FromSeconds(10)))
            {
                store.Add(received);
            }
            var options = new VfioOptions { ContainerFd = "container" };
            options.GroupFds["2"] = "group2";
            using (var backend = new LegacyBackend(kernel, options, store))
            using (var space = new DmaSpace("worker"))
            {
                backend.CanAttach(Kit.Source(Kit.Edu2), out string reason).ShouldBeTrue(reason);
                using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
                using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x2000, DmaAccess.ReadWrite, Kit.EduMask);
                Kit.RoundTripThrough(edu, buffer);
                kernel.DmaFaults.ShouldBeEmpty();

                // A group without a passed fd needs its node, which the worker may not open.
                Should.Throw<VfioException>(() => backend.AttachDevice(Kit.Source(Kit.Edu3), space)).Errno.ShouldBe(Errno.EACCES);
            }

            // Borrowed fds stay open (the store owns them) but hold no mapping and no group in a container.
            store.Names.Count.ShouldBe(2);
            kernel.GetState().OpenFiles.ShouldBe(2);
            kernel.GetState().DmaMappings.ShouldBe(0);
        }
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void IommuFdAsContainer_AttachesAndMapsThroughDevIommu()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel, new VfioOptions { IommuFdAsContainer = true });
        using (var space = new DmaSpace("compat"))
        {
            using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
            var container = (LegacyContainer)edu.Container;
            kernel.GetStatus(container.Fd, out FileStatus status).ShouldBe(0);
            kernel.ReadLink($"/sys/dev/char/{status.DeviceMajor}:{status.DeviceMinor}", out string target).ShouldBe(0);
            target.ShouldEndWith("/misc/iommu");
            container.DmaMappingsAvailable.ShouldBeNull(); // iommufd reports no limit (0xffffffff)
            container.Features.HasFlag(IommuBackendFeatures.DirtyTracking).ShouldBeFalse();
            using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x2000, DmaAccess.ReadWrite, Kit.EduMask);
            kernel.GetState().DmaMappings.ShouldBe(1);
            Kit.RoundTripThrough(edu, buffer);
            kernel.DmaFaults.ShouldBeEmpty();
        }
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void MapUnmap_SteadyState_AllocatesNothing()
    {
        // The whole path through the simulator: DmaSpace, the legacy container, the kernel port and the Type1 model,
        // which pools its mapping records as the kernel port's contract asks.
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("alloc");
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        // The buffer's pages, mapped and unmapped again at a second IOVA (an IOMMU may alias memory).
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x1000);
        space.EnsureCapacity(16);
        for (int i = 0; i < 100; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        long maps = kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_MAP_DMA);
        long unmaps = kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_UNMAP_DMA);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        allocated.ShouldBe(0);
        kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_MAP_DMA).ShouldBe(maps + 1000);
        kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_UNMAP_DMA).ShouldBe(unmaps + 1000);
        kernel.GetState().DmaMappings.ShouldBe(1);
    }
}
