// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>Discovery, attach and detach, what a space reports, and how devices share containers.</summary>
public sealed class AttachTests
{
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Discovery_CanAttachEveryBoundDevice_AndNotAMissingOne(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        foreach (string name in new[] { Target.Edu, Target.Nvme, Target.Edu2 })
        {
            rig.Backend.CanAttach(VfioDeviceSource.Pci(name), out string reason).ShouldBeTrue(reason);
        }
        rig.Backend.CanAttach(VfioDeviceSource.Pci("0000:00:1e.7"), out string missing).ShouldBeFalse();
        missing.ShouldContain("0000:00:1e.7");
        // The group's default domain (iommu_group_show_type): lazy DMA on the testbed's VT-d, none for vfio's fake
        // no-IOMMU group.
        rig.Kernel.ReadText($"/sys/bus/pci/devices/{Target.Edu}/iommu_group/type", out string type).ShouldBe(0);
        type.Trim().ShouldBe(mode == Mode.NoIommu ? "unknown" : "DMA-FQ");
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void AttachDetach_ThenAttachAgain(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        AttachedDevice edu = rig.Attach(Target.Edu, space);
        edu.IsAttached.ShouldBeTrue();
        edu.Name.ShouldBe(Target.Edu);
        edu.Space.ShouldBeSameAs(space);
        edu.Backend.ShouldBeSameAs(rig.Backend);
        space.Containers.ShouldHaveSingleItem().ShouldBeSameAs(edu.Container);
        edu.Container.Devices.ShouldHaveSingleItem().ShouldBeSameAs(edu);
        edu.Device.Info.IsPci.ShouldBeTrue();
        if (mode == Mode.NoIommu)
        {
            edu.ShouldBeOfType<LegacyAttachedDevice>().IsNoIommu.ShouldBeTrue();
            edu.ShouldBeOfType<LegacyAttachedDevice>().LegacyContainer.IsNoIommu.ShouldBeTrue();
        }
        else
        {
            edu.IommuGroup.ShouldBe(2);
        }

        edu.Dispose();
        edu.IsAttached.ShouldBeFalse();
        space.Containers.ShouldBeEmpty();   // the container lived as long as it had devices
        edu.Container.IsReleased.ShouldBeTrue();

        // The group (or cdev) was given back: attaching again works.
        using AttachedDevice again = rig.Attach(Target.Edu, space);
        again.IsAttached.ShouldBeTrue();
        again.Container.ShouldNotBeSameAs(edu.Container);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public void Space_ReportsThePageSizesAndIovaRangesOfVtd(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        DmaContainer container = edu.Container;

        // Type1 and iommufd's Type1 compatibility report VT-d's page sizes (4K, 2M, 1G, as measured on the testbed); iommufd reports
        // one alignment.
        container.PageSizes.ShouldBe(mode == Mode.IommuFd ? 0x1000UL : 0x40201000UL);
        container.MinimumPageSize.ShouldBe(4096UL);
        edu.Space.PageSize.ShouldBe(4096UL);

        // QEMU 10's VT-d: a 48-bit address width, minus the x86 MSI window.
        IovaRange[] expected = [new IovaRange(0, 0xfedf_ffff), new IovaRange(0xfef0_0000, 0xffff_ffff_ffff)];
        container.IovaRanges.ShouldBe(expected);
        edu.Space.IovaRanges.ShouldBe(expected);
        if (mode == Mode.Legacy)
        {
            container.DmaMappingsAvailable.ShouldBe(65535);
        }
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void TwoEdusInOneSpace_ShareOneContainer_AndBothDma(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace("shared");
        AttachedDevice first = rig.Attach(Target.Edu, space);
        AttachedDevice second = rig.Attach(Target.Edu2, space);

        DmaContainer container = space.Containers.ShouldHaveSingleItem();
        first.Container.ShouldBeSameAs(container);
        second.Container.ShouldBeSameAs(container);
        container.Devices.Count.ShouldBe(2);
        second.IommuGroup.ShouldBe(4);
        switch (container)
        {
            case LegacyContainer legacy:
                legacy.Groups.OrderBy(g => g).ShouldBe([2, 4]);
                break;
            case IommuFdContainer ioas:
                // The second device attached to the first one's (compatible) page table.
                first.ShouldBeOfType<IommuFdAttachedDevice>().HwptId.ShouldBe(second.ShouldBeOfType<IommuFdAttachedDevice>().HwptId);
                ioas.HwptIds.ShouldHaveSingleItem();
                break;
            default:
                throw new ShouldAssertException($"unexpected container {container.GetType()}");
        }

        using DmaBuffer buffer = DmaBufferPages.Allocate(space, 4);
        DmaMapping mapping = buffer.Mapping;
        Edu.RoundTrip(first, buffer, mapping.Iova, page: 0, seed: 1);
        Edu.RoundTrip(second, buffer, mapping.Iova, page: 2, seed: 2);

        // Detaching one keeps the container for the other.
        first.Dispose();
        space.Containers.ShouldHaveSingleItem().ShouldBeSameAs(container);
        Edu.RoundTrip(second, buffer, mapping.Iova, page: 0, seed: 3);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void ASecondSpace_GetsItsOwnContainer(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice first = rig.Attach(Target.Edu, rig.NewSpace("a"));
        AttachedDevice second = rig.Attach(Target.Edu2, rig.NewSpace("b"));

        second.Container.ShouldNotBeSameAs(first.Container);
        second.Container.Name.ShouldNotBe(first.Container.Name);
        first.Space.Containers.ShouldHaveSingleItem().ShouldBeSameAs(first.Container);
        second.Space.Containers.ShouldHaveSingleItem().ShouldBeSameAs(second.Container);
        switch (first.Container)
        {
            case LegacyContainer legacy:
                legacy.Groups.ShouldBe([2]);
                ((LegacyContainer)second.Container).Groups.ShouldBe([4]);
                break;
            case IommuFdContainer ioas:
                ((IommuFdContainer)second.Container).IoasId.ShouldNotBe(ioas.IoasId);
                break;
            default:
                throw new ShouldAssertException($"unexpected container {first.Container.GetType()}");
        }

        // The same memory mapped in both spaces (the buffer's own mapping in the first), each edu DMAs through its own.
        using DmaBuffer buffer = DmaBufferPages.Allocate(first.Space, 2);
        DmaMapping a = buffer.Mapping;
        DmaMapping b = second.Space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, Vfio.Samples.Edu.EduDriver.DefaultDmaMask);
        Edu.RoundTrip(first, buffer, a.Iova, page: 0, seed: 4);
        Edu.RoundTrip(second, buffer, b.Iova, page: 0, seed: 5);
        second.Space.Unmap(b);   // before the buffer frees the memory
    }
}
