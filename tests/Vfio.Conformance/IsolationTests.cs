// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>Devices the kernel will not hand over: an IOMMU without interrupt remapping, a device bound to no VFIO
/// driver.</summary>
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

    /// <summary>
    /// A device bound to no driver is not usable for VFIO (its group node and cdev are gone) and the library says how to
    /// bind it. The testbed has no IOMMU group shared with a host driver (every device is alone in its group, and an
    /// unbound device keeps a group viable), so this is the not-viable case the testbed can make: the real kernel
    /// unbinds the second edu from vfio-pci through sysfs and binds it back afterwards (driver_override stays
    /// vfio-pci, drivers_probe); the simulator builds the machine with that device bound to no driver. IOMMU modes only:
    /// without an IOMMU an unbound device has no group at all (vfio-noiommu makes one when it binds).
    /// </summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void DeviceBoundToNoDriver_IsUnusable_WithHowToBind(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(Edu2Driver: ""));
        string edu2 = Target.Edu2;
        using (Target.IsKernel ? new Unbound(edu2) : null)
        {
            VfioDeviceSource source = VfioDeviceSource.Pci(edu2);
            rig.Backend.CanAttach(source, out string reason).ShouldBeFalse();
            reason.ShouldContain(edu2);
            VfioDeviceUnusableException exception = Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(edu2));
            exception.ObjectName.ShouldBe(edu2);
            exception.Hint.ShouldNotBeNull().ShouldContain("vfio-pci");
            exception.Hint.ShouldContain("driver_override");
            exception.Message.ShouldContain("bound to no driver");

            // The other devices are unaffected.
            using AttachedDevice edu = rig.Attach(Target.Edu);
            new Vfio.Samples.Edu.EduDriver(edu.Device, useMmap: false).ReadIdentification().ShouldBe(Vfio.Samples.Edu.EduDriver.Identification);
        }
        if (Target.IsKernel)
        {
            // Bound to vfio-pci again: it attaches as before.
            rig.Backend.CanAttach(VfioDeviceSource.Pci(edu2), out string again).ShouldBeTrue(again);
        }
    }

    /// <summary>Unbinds a PCI device from its driver (real kernel); disposing binds it to its driver_override
    /// (vfio-pci in the testbed) again.</summary>
    private sealed class Unbound : IDisposable
    {
        private readonly string _device;

        internal Unbound(string device)
        {
            _device = device;
            string dir = $"/sys/bus/pci/devices/{device}";
            File.ReadAllText($"{dir}/driver_override").Trim().ShouldBe("vfio-pci");
            File.WriteAllText($"{dir}/driver/unbind", device);
            Directory.Exists($"{dir}/driver").ShouldBeFalse();
        }

        public void Dispose()
        {
            File.WriteAllText("/sys/bus/pci/drivers_probe", _device);
            Path.GetFileName(Directory.ResolveLinkTarget($"/sys/bus/pci/devices/{_device}/driver", returnFinalTarget: false)?.FullName)
                .ShouldBe("vfio-pci");
        }
    }
}
