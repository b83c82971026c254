// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>A DMA request the space must refuse.</summary>
public enum DmaError
{
    /// <summary>A map overlapping an existing mapping.</summary>
    Overlap,

    /// <summary>A map at an IOVA not aligned to the page size.</summary>
    Misaligned,

    /// <summary>A map in the x86 MSI window.</summary>
    OutsideIovaRanges,

    /// <summary>An unmap of an IOVA nothing is mapped at.</summary>
    UnmapNotMapped,
}

/// <summary>Typed errors, the same on every backend and both kernels.</summary>
public sealed class ErrorTests
{
    public static TheoryData<Mode, DmaError> DmaErrors() => Target.IommuModesTimes<DmaError>();

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(DmaErrors))]
    public void DmaMap_RejectsWithATypedError_AndTheSpaceStillWorks(Mode mode, DmaError error)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        DmaSpace space = attached.Space;
        using DmaBuffer buffer = DmaBufferPages.Allocate(space, 4);
        DmaMapping mapping = buffer.Mapping;

        VfioDmaException exception = error switch
        {
            DmaError.Overlap => Should.Throw<VfioDmaException>(() => space.MapAt(mapping.Iova + 0x1000, buffer.Address + (2 * 4096), 2 * 4096)),
            DmaError.Misaligned => Should.Throw<VfioDmaException>(() => space.MapAt(0x20_0800, buffer.Address + (2 * 4096), 4096)),
            DmaError.OutsideIovaRanges => Should.Throw<VfioDmaException>(() => space.MapAt(0xfee0_0000, buffer.Address + (2 * 4096), 4096)),
            DmaError.UnmapNotMapped => Should.Throw<VfioDmaException>(() => space.Unmap(0x30_0000)),
            _ => throw new ArgumentOutOfRangeException(nameof(error)),
        };
        exception.Failure.ShouldBe(error switch
        {
            DmaError.Overlap => DmaMappingFailure.Overlap,
            DmaError.Misaligned => DmaMappingFailure.Misaligned,
            DmaError.OutsideIovaRanges => DmaMappingFailure.OutsideIovaRanges,
            _ => DmaMappingFailure.NotMapped,
        });
        exception.Errno.ShouldBe(Errno.None);   // caught before the kernel, the same on every backend

        // Beyond VT-d's 48-bit address width is outside too.
        Should.Throw<VfioDmaException>(() => space.MapAt(1UL << 48, buffer.Address + (2 * 4096), 4096))
            .Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);

        // Nothing changed: the first mapping is the only one and DMA through it works.
        space.MappingCount.ShouldBe(1);
        Edu.RoundTrip(attached, buffer, mapping.Iova, page: 0, seed: 31);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void DeviceNameWithASlash_IsRejectedBeforeAnyPath(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Platform("../../pci/devices/" + Target.Edu));
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Pci(Target.Edu + "/.."));
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Parse("0000:00:02.0/../0000:00:04.0"));
        // Nothing was opened: the device attaches normally afterwards.
        using AttachedDevice edu = rig.Attach(Target.Edu);
        new EduDriver(edu, useMmap: false).ReadIdentification().ShouldBe(EduDriver.Identification);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void TheSameDeviceAttachedTwice_IsUnusable_AndTheFirstAttachmentStays(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace("first");
        AttachedDevice edu = rig.Attach(Target.Edu, space);

        VfioDeviceUnusableException same = Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(Target.Edu, space));
        same.ObjectName.ShouldBe(Target.Edu);
        same.Message.ShouldContain("already attached");
        Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(Target.Edu, rig.NewSpace("second")))
            .Message.ShouldContain("already attached");

        edu.IsAttached.ShouldBeTrue();
        space.Containers.ShouldHaveSingleItem().Devices.ShouldHaveSingleItem().ShouldBeSameAs(edu);
        new EduDriver(edu, useMmap: false).ReadIdentification().ShouldBe(EduDriver.Identification);
    }

    [Theory]
    [Trait("Modes", "noiommu")]
    [MemberData(nameof(Target.NoIommuModes), MemberType = typeof(Target))]
    public void NoIommuGroup_WithoutTheOptIn_IsUnusable(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        IIommuBackend cautious = rig.NewBackend(new VfioOptions());
        VfioDeviceSource source = VfioDeviceSource.Pci(Target.Edu);

        cautious.CanAttach(source, out string reason).ShouldBeFalse();
        reason.ShouldContain("AllowUnsafeNoIommu");
        VfioDeviceUnusableException exception = Should.Throw<VfioDeviceUnusableException>(() => cautious.AttachDevice(source, rig.NewSpace()));
        exception.ObjectName.ShouldBe(Target.Edu);
        exception.Hint.ShouldNotBeNull().ShouldContain("AllowUnsafeNoIommu");

        // With the opt-in, the same device attaches.
        using AttachedDevice edu = rig.Attach(Target.Edu);
        edu.Container.ShouldBeOfType<Vfio.Backends.Legacy.LegacyContainer>().IsNoIommu.ShouldBeTrue();
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Reset_WorksOnNvme_AndIsEinvalOnEdu(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice nvme = rig.Attach(Target.Nvme);
        nvme.Device.Info.SupportsReset.ShouldBeTrue();
        nvme.Device.Reset();

        AttachedDevice edu = rig.Attach(Target.Edu);
        edu.Device.Info.SupportsReset.ShouldBeFalse();
        VfioException exception = Should.Throw<VfioException>(edu.Device.Reset);
        exception.Errno.ShouldBe(Errno.EINVAL);
        exception.Operation.ShouldBe("VFIO_DEVICE_RESET");
        exception.ObjectName.ShouldBe(Target.Edu);
        exception.Hint.ShouldNotBeNull();
    }
}
