// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
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
        using var buffer = new DmaBuffer(0x2000);
        int before = Kit.ProcessFdCount();
        var backend = new LegacyBackend(kernel);
        var space = new DmaSpace("teardown");
        AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), space);
        DmaMapping mapping = space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, Kit.EduMask);
        Kit.RoundTripThrough(a.Device, buffer, mapping.Iova);
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
            using var buffer = new DmaBuffer(0x2000);
            using (var backend = new LegacyBackend(kernel, options, store))
            using (var space = new DmaSpace("worker"))
            {
                backend.CanAttach(Kit.Source(Kit.Edu2), out string reason).ShouldBeTrue(reason);
                using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
                DmaMapping mapping = space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, Kit.EduMask);
                Kit.RoundTripThrough(edu.Device, buffer, mapping.Iova);
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
        using var buffer = new DmaBuffer(0x2000);
        using (var space = new DmaSpace("compat"))
        {
            using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
            var container = (LegacyContainer)edu.Container;
            kernel.GetStatus(container.Fd, out FileStatus status).ShouldBe(0);
            kernel.ReadLink($"/sys/dev/char/{status.DeviceMajor}:{status.DeviceMinor}", out string target).ShouldBe(0);
            target.ShouldEndWith("/misc/iommu");
            container.DmaMappingsAvailable.ShouldBeNull(); // iommufd reports no limit (0xffffffff)
            container.Features.HasFlag(IommuBackendFeatures.DirtyTracking).ShouldBeFalse();
            DmaMapping mapping = space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, Kit.EduMask);
            kernel.GetState().DmaMappings.ShouldBe(1);
            Kit.RoundTripThrough(edu.Device, buffer, mapping.Iova);
            kernel.DmaFaults.ShouldBeEmpty();
        }
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void MapUnmap_SteadyState_AllocatesNothing()
    {
        // The simulator's Type1 model allocates its own per-mapping record (as the kernel allocates a struct vfio_dma),
        // 64 bytes a map; so the measured window issues MAP/UNMAP to a port that accepts them without the model, and
        // what is counted is the DMA space's and the legacy container's own path (ioctl structs, retries, book-keeping).
        using SimulatedKernel kernel = Kit.TwoEdus();
        var port = new AcceptingDmaKernel(kernel);
        using var backend = new LegacyBackend(port);
        using var space = new DmaSpace("alloc");
        using var buffer = new DmaBuffer(0x1000);
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        space.EnsureCapacity(16);
        for (int i = 0; i < 100; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        port.AcceptDma = true;
        long calls = port.AcceptedCalls;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        port.AcceptDma = false;
        allocated.ShouldBe(0);
        (port.AcceptedCalls - calls).ShouldBe(2000);
    }

    [Fact]
    public void MapUnmap_ThroughTheSimulatorsType1Model_AllocatesOnlyTheModelsRecord()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("alloc-sim");
        using var buffer = new DmaBuffer(0x1000);
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        space.EnsureCapacity(16);
        for (int i = 0; i < 100; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            space.Unmap(space.Map(buffer.Address, buffer.Size).Iova);
        }
        long perPair = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000;
        perPair.ShouldBeLessThanOrEqualTo(64); // one Type1Mapping object of the model
    }
}

/// <summary>Forwards to the simulator, but while <see cref="AcceptDma"/> is set answers MAP_DMA and UNMAP_DMA itself
/// with success (UNMAP's size written back unchanged: all of it unmapped).</summary>
internal sealed class AcceptingDmaKernel(IKernel inner) : IKernel
{
    internal bool AcceptDma { get; set; }

    internal long AcceptedCalls { get; private set; }

    public int Open(string path, OpenFlags flags, out SafeFileHandle handle) => inner.Open(path, flags, out handle);

    public int Ioctl(System.Runtime.InteropServices.SafeHandle fd, uint request, nint argument) => inner.Ioctl(fd, request, argument);

    public unsafe int Ioctl(System.Runtime.InteropServices.SafeHandle fd, uint request, void* argument)
    {
        if (AcceptDma && (request == Vfio.Core.Interop.VfioUapi.VFIO_IOMMU_MAP_DMA || request == Vfio.Core.Interop.VfioUapi.VFIO_IOMMU_UNMAP_DMA))
        {
            AcceptedCalls++;
            return 0;
        }
        return inner.Ioctl(fd, request, argument);
    }

    public int Ioctl(System.Runtime.InteropServices.SafeHandle fd, uint request, Span<byte> argument) => inner.Ioctl(fd, request, argument);

    public long PRead(System.Runtime.InteropServices.SafeHandle fd, Span<byte> buffer, long offset) => inner.PRead(fd, buffer, offset);

    public long PWrite(System.Runtime.InteropServices.SafeHandle fd, ReadOnlySpan<byte> buffer, long offset) => inner.PWrite(fd, buffer, offset);

    public int Map(System.Runtime.InteropServices.SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
        => inner.Map(fd, offset, length, protection, out mapping);

    public int GetStatus(System.Runtime.InteropServices.SafeHandle fd, out FileStatus status) => inner.GetStatus(fd, out status);

    public int ReadLink(string path, out string target) => inner.ReadLink(path, out target);

    public int ReadText(string path, out string text) => inner.ReadText(path, out text);

    public int ListDirectory(string path, out string[] entries) => inner.ListDirectory(path, out entries);

    public bool Exists(string path) => inner.Exists(path);
}
