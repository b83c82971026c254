// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>Attach, detach, sharing of containers, replay and DMA through the legacy backend.</summary>
public sealed class AttachTests
{
    [Fact]
    public void AttachDetach_Edu_OpensContainerGroupAndDevice_ThenClosesThemAll()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("edu");
        AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);

        var legacy = edu.ShouldBeOfType<LegacyAttachedDevice>();
        legacy.IommuGroup.ShouldBe(2);
        legacy.GroupFd.IsInvalid.ShouldBeFalse();
        edu.Device.Info.IsPci.ShouldBeTrue();
        LegacyContainer container = legacy.LegacyContainer;
        container.IommuType.ShouldBe(VfioUapi.VFIO_TYPE1v2_IOMMU);
        container.Groups.ShouldBe([2]);
        container.Devices.ShouldBe([edu]);
        container.Features.ShouldBe(IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.PassedFds | IommuBackendFeatures.DirtyTracking);
        container.DmaMappingsAvailable.ShouldBe(ushort.MaxValue);
        space.Containers.ShouldBe([container]);
        kernel.GetState().OpenFiles.ShouldBe(3); // container, group, device

        edu.Dispose();
        edu.IsAttached.ShouldBeFalse();
        container.IsReleased.ShouldBeTrue();
        space.Containers.ShouldBeEmpty();
        kernel.GetState().IsEmpty.ShouldBeTrue();
        backend.DetachDevice(edu); // a second detach does nothing
    }

    [Fact]
    public void DmaRoundTrip_RamToEduToRam_ThenBlockedAfterUnmap()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("edu");
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x2000, DmaAccess.ReadWrite, Kit.EduMask);
        DmaMapping mapping = buffer.Mapping;
        kernel.GetState().DmaMappings.ShouldBe(1);
        edu.Container.DmaMappingsAvailable.ShouldBe(ushort.MaxValue - 1);

        Kit.RoundTripThrough(edu, buffer);
        kernel.DmaFaults.ShouldBeEmpty();

        space.Unmap(mapping.Iova);   // the buffer's memory stays until it is disposed
        edu.Container.DmaMappingsAvailable.ShouldBe(ushort.MaxValue);
        kernel.GetState().DmaMappings.ShouldBe(0);
        buffer.Span.Slice(4096, 1024).Clear();
        Kit.EduRoundTrip(edu, mapping.Iova, mapping.Iova + 4096);
        kernel.DmaFaults.ShouldNotBeEmpty();
        kernel.DmaFaults[0].Iova.ShouldBe(mapping.Iova);
        buffer.Span.Slice(4096, 1024).ToArray().ShouldAllBe(b => b == 0);
    }

    [Fact]
    public void TwoDevicesInSeparateGroups_OneSpace_ShareOneContainer()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("shared");
        using AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        using AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), space);

        b.Container.ShouldBeSameAs(a.Container);
        space.Containers.Count.ShouldBe(1);
        ((LegacyContainer)a.Container).Groups.ShouldBe([2, 3]);
        kernel.GetState().OpenFiles.ShouldBe(5); // one container, two groups, two devices

        a.Dispose();
        a.Container.IsReleased.ShouldBeFalse();
        ((LegacyContainer)b.Container).Groups.ShouldBe([3]);
        kernel.GetState().OpenFiles.ShouldBe(3);
        b.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void TwoSpaces_GetTwoContainers()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var one = new DmaSpace("one");
        using var two = new DmaSpace("two");
        using AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), one);
        using AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), two);

        b.Container.ShouldNotBeSameAs(a.Container);
        ((LegacyContainer)a.Container).Fd.DangerousGetHandle().ShouldNotBe(((LegacyContainer)b.Container).Fd.DangerousGetHandle());
        kernel.GetState().OpenFiles.ShouldBe(6);
    }

    [Fact]
    public void Replay_MapFirstAttachLater_DmaWorks_AndALaterSecondContainerGetsTheMappingsToo()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("replay");
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x2000, DmaAccess.ReadWrite, Kit.EduMask);

        using AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        kernel.GetState().DmaMappings.ShouldBe(1);
        Kit.RoundTripThrough(a, buffer);

        // The second group cannot join the first container (as when the kernel refuses SET_CONTAINER): it gets its own.
        kernel.Faults.FailIoctl(VfioUapi.VFIO_GROUP_SET_CONTAINER, 1, Errno.EPERM);
        using AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), space);
        b.Container.ShouldNotBeSameAs(a.Container);
        space.Containers.Count.ShouldBe(2);
        kernel.GetState().DmaMappings.ShouldBe(2);
        Kit.RoundTripThrough(b, buffer);
        kernel.DmaFaults.ShouldBeEmpty();

        b.Dispose();
        kernel.GetState().DmaMappings.ShouldBe(1);
        space.MappingCount.ShouldBe(1);
    }

    [Fact]
    public void DisposingTheSpace_DetachesDevicesAndReleasesContainers()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        var space = new DmaSpace("whole");
        AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        AttachedDevice b = backend.AttachDevice(Kit.Source(Kit.Edu3), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x1000);   // outlives the space: disposal then only frees it
        space.Dispose();
        a.IsAttached.ShouldBeFalse();
        b.IsAttached.ShouldBeFalse();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void DisposingTheBackend_DetachesWhatIsLeft()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var space = new DmaSpace("left");
        var backend = new LegacyBackend(kernel);
        AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        backend.Dispose();
        a.IsAttached.ShouldBeFalse();
        kernel.GetState().IsEmpty.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
    }

    [Fact]
    public void DetachDevice_FromAnotherBackend_IsRefused()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var other = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        Should.Throw<ArgumentException>(() => other.DetachDevice(a)).Message.ShouldContain("another legacy backend instance");
        a.IsAttached.ShouldBeTrue();
    }

    [Fact]
    public void CanAttach_SaysWhy()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.AddPci("0000:00:04.0", iommuGroup: 4, model: null, driver: "e1000e"));
        using var backend = new LegacyBackend(kernel);
        backend.CanAttach(Kit.Source(Kit.Edu2), out string reason).ShouldBeTrue();
        reason.ShouldContain("/dev/vfio/2");
        backend.CanAttach(Kit.Source("0000:00:04.0"), out reason).ShouldBeFalse();
        reason.ShouldContain("no /dev/vfio node");
        backend.CanAttach(Kit.Source("0000:00:09.0"), out reason).ShouldBeFalse();
        reason.ShouldContain("no IOMMU group");

        using SimulatedKernel noContainer = Kit.TwoEdus(t => t.LegacyContainer = false);
        using var without = new LegacyBackend(noContainer);
        without.CanAttach(Kit.Source(Kit.Edu2), out reason).ShouldBeFalse();
        reason.ShouldContain("CONFIG_VFIO_CONTAINER");
        without.IsAvailable(out reason).ShouldBeFalse();
        reason.ShouldContain("/dev/vfio/vfio");
        backend.IsAvailable(out reason).ShouldBeTrue();
        using var passed = new LegacyBackend(noContainer, new VfioOptions { ContainerFd = "container" });
        passed.IsAvailable(out reason).ShouldBeTrue();
        reason.ShouldContain("Vfio:ContainerFd");
    }

    [Fact]
    public void DirtyTracking_ReportsThePagesEduWrote()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("dirty");
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x4000, DmaAccess.ReadWrite, Kit.EduMask);
        DmaMapping mapping = buffer.Mapping;
        DmaContainer container = edu.Container;
        container.StartDirtyTracking();
        Span<ulong> bits = stackalloc ulong[1];
        container.ReadDirtyBitmap(mapping.Iova, mapping.Size, 4096, bits); // clears what START marked
        bits.Clear();
        Kit.EduRoundTrip(edu, mapping.Iova, mapping.Iova + 0x2000);
        container.ReadDirtyBitmap(mapping.Iova, mapping.Size, 4096, bits);
        (bits[0] & 0b0100).ShouldBe(0b0100UL);
        container.StopDirtyTracking();
    }
}
