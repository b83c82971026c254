// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>Devices the kernel will not hand over.</summary>
public sealed class IsolationTests
{
    /// <summary>
    /// Without interrupt remapping the kernel refuses unsafe interrupts (MSI not isolated): Type1's VFIO_SET_IOMMU and
    /// iommufd's VFIO_DEVICE_BIND_IOMMUFD fail with EPERM unless <c>allow_unsafe_interrupts</c> is set, and the library
    /// says which parameter that is. Real kernel: the testbed shape pci-intremap-off (intel-iommu,intremap=off).
    /// </summary>
    [Theory]
    [Trait("Modes", "intremap-off")]
    [MemberData(nameof(Target.IntremapOffModes), MemberType = typeof(Target))]
    public void NoInterruptRemapping_AttachIsEperm_WithTheAllowUnsafeInterruptsHint(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(InterruptRemapping: false));
        DmaSpace space = rig.NewSpace();
        VfioException exception = Should.Throw<VfioException>(() => rig.Attach(Target.Edu, space));
        exception.Errno.ShouldBe(Errno.EPERM);
        if (mode == Mode.Legacy)
        {
            exception.Operation.ShouldBe("VFIO_SET_IOMMU");
            exception.Hint.ShouldNotBeNull().ShouldContain("vfio_iommu_type1.allow_unsafe_interrupts=1");
        }
        else
        {
            exception.ShouldBeOfType<VfioDeviceUnusableException>().ObjectName.ShouldBe(Target.Edu);
            exception.Operation.ShouldBe("VFIO_DEVICE_BIND_IOMMUFD");
            exception.Hint.ShouldNotBeNull().ShouldContain("iommufd.allow_unsafe_interrupts=1");
        }
        // Nothing stayed attached or open: the space has no container.
        space.Containers.ShouldBeEmpty();
    }
}
