// SPDX-License-Identifier: MIT
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Conformance;

/// <summary>Devices the kernel will not hand over: an IOMMU without interrupt remapping, an IOMMU group that is not
/// viable, a device bound to no VFIO driver.</summary>
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
    /// The testbed's group that is not viable, as the kernel itself answers, each mode on its own way in: a conventional
    /// PCI bridge (00:05.0) with edu (01:01.0, vfio-pci) and virtio-rng (01:02.0, virtio-pci) behind it, all three in one
    /// IOMMU group (5). virtio-pci claims DMA ownership of the group, so: legacy, GROUP_GET_STATUS has no VIABLE flag,
    /// GET_DEVICE_FD is EINVAL (no container) and SET_CONTAINER is EPERM; iommufd as the container, SET_CONTAINER
    /// succeeds (it claims nothing: status then says VIABLE|CONTAINER_SET) and the ownership claim fails at
    /// GET_DEVICE_FD with EPERM; iommufd, the edu's cdev exists and opens, and VFIO_DEVICE_BIND_IOMMUFD is EPERM
    /// (iommu_device_claim_dma_owner: the group has another owner). Seen on Linux 6.12 in the testbed.
    /// </summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public unsafe void GroupNotViable_TheKernelRefusesEachWayIn(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        IKernel kernel = rig.Kernel;
        string edu = Target.EduBehindBridge;

        // sysfs: the bridge and both devices behind it in one group, each with its driver.
        int group = VfioSysfs.GetIommuGroup(kernel, $"/sys/bus/pci/devices/{edu}").ShouldNotBeNull();
        group.ShouldBe(5);
        VfioSysfs.GetIommuGroup(kernel, $"/sys/bus/pci/devices/{Target.Bridge}").ShouldBe(group);
        VfioSysfs.GetIommuGroup(kernel, $"/sys/bus/pci/devices/{Target.VirtioRng}").ShouldBe(group);
        VfioSysfs.GetGroupMembers(kernel, group).OrderBy(m => m.Name, StringComparer.Ordinal).ShouldBe(
        [
            new VfioGroupMember(Target.Bridge, null),
            new VfioGroupMember(edu, "vfio-pci"),
            new VfioGroupMember(Target.VirtioRng, Target.VirtioRngDriver),
        ]);
        VfioSysfs.GetHostDriverMembers(kernel, group).ShouldBe([new VfioGroupMember(Target.VirtioRng, Target.VirtioRngDriver)]);
        string cdev = VfioSysfs.GetCdevPath(kernel, $"/sys/bus/pci/devices/{edu}").ShouldNotBeNull();
        byte[] name = Encoding.UTF8.GetBytes(edu + "\0");

        if (mode == Mode.IommuFd)
        {
            using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
            using SafeFileHandle device = OpenOk(kernel, cdev);
            var bind = new vfio_device_bind_iommufd { argsz = 16, iommufd = (int)iommufd.DangerousGetHandle() };
            kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_BIND_IOMMUFD, &bind).ShouldBe(-(int)Errno.EPERM);
            bind.out_devid.ShouldBe(0u);
            return;
        }
        using SafeFileHandle groupFd = OpenOk(kernel, $"/dev/vfio/{group}");
        Status(kernel, groupFd).ShouldBe(0u);
        kernel.Ioctl(groupFd, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan()).ShouldBe(-(int)Errno.EINVAL);
        if (mode == Mode.Legacy)
        {
            using SafeFileHandle container = OpenOk(kernel, "/dev/vfio/vfio");
            int fd = (int)container.DangerousGetHandle();
            kernel.Ioctl(groupFd, VfioUapi.VFIO_GROUP_SET_CONTAINER, &fd).ShouldBe(-(int)Errno.EPERM);
            Status(kernel, groupFd).ShouldBe(0u);
        }
        else
        {
            using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
            int fd = (int)iommufd.DangerousGetHandle();
            kernel.Ioctl(groupFd, VfioUapi.VFIO_GROUP_SET_CONTAINER, &fd).ShouldBe(0);
            Status(kernel, groupFd).ShouldBe(VfioUapi.VFIO_GROUP_FLAGS_VIABLE | VfioUapi.VFIO_GROUP_FLAGS_CONTAINER_SET);
            kernel.Ioctl(iommufd, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
            kernel.Ioctl(groupFd, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan()).ShouldBe(-(int)Errno.EPERM);
            kernel.Ioctl(groupFd, VfioUapi.VFIO_GROUP_UNSET_CONTAINER, 0).ShouldBe(0);
            Status(kernel, groupFd).ShouldBe(0u);
        }
    }

    /// <summary>
    /// The library on the same group: attaching the edu behind the bridge is a <see cref="VfioDeviceUnusableException"/>
    /// that names the member bound to a host driver (virtio-rng on virtio-pci) and says how to unbind it or bind it to
    /// vfio-pci. Legacy and iommufd-as-container find it from GROUP_GET_STATUS before they touch a container; iommufd
    /// from BIND_IOMMUFD's EPERM and the group's members in sysfs. Nothing stays open (a second attempt fails the same
    /// way, not with EBUSY), and the other devices attach to the same space as usual.
    /// </summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void GroupNotViable_AttachIsUnusable_NamingTheMemberOnAHostDriverAndTheFix(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        string edu = Target.EduBehindBridge;
        string rng = Target.VirtioRng;
        DmaSpace space = rig.NewSpace();

        for (int attempt = 0; attempt < 2; attempt++)
        {
            VfioDeviceUnusableException exception = Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(edu, space));
            exception.ObjectName.ShouldBe(edu);
            exception.Message.ShouldContain("IOMMU group 5 is not viable");
            exception.Message.ShouldContain($"{rng} (bound to {Target.VirtioRngDriver})");
            string hint = exception.Hint.ShouldNotBeNull();
            hint.ShouldContain($"echo {rng} > /sys/bus/pci/devices/{rng}/driver/unbind");
            hint.ShouldContain($"echo vfio-pci > /sys/bus/pci/devices/{rng}/driver_override");
            hint.ShouldContain($"echo {rng} > /sys/bus/pci/drivers_probe");
            if (mode == Mode.IommuFd)
            {
                exception.Operation.ShouldBe("VFIO_DEVICE_BIND_IOMMUFD");
                exception.Errno.ShouldBe(Errno.EPERM);
            }
            else
            {
                exception.Operation.ShouldBe("attach device");
                exception.Errno.ShouldBe(Errno.None);   // GROUP_GET_STATUS succeeded, without the VIABLE flag
            }
            space.Containers.ShouldBeEmpty();
        }

        // The other devices are unaffected.
        using AttachedDevice first = rig.Attach(Target.Edu, space);
        new Vfio.Samples.Edu.EduDriver(first, useMmap: false).ReadIdentification().ShouldBe(Vfio.Samples.Edu.EduDriver.Identification);
        Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(edu, space)).Message.ShouldContain("not viable");
        space.Containers.ShouldHaveSingleItem().Devices.ShouldHaveSingleItem().ShouldBeSameAs(first);
    }

    private static SafeFileHandle OpenOk(IKernel kernel, string path)
    {
        VfioException.ThrowIfFailed(kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle), "open", path);
        return handle;
    }

    private static unsafe uint Status(IKernel kernel, SafeFileHandle group)
    {
        var status = new vfio_group_status { argsz = (uint)sizeof(vfio_group_status) };
        kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_STATUS, &status).ShouldBe(0);
        return status.flags;
    }

    /// <summary>
    /// A device bound to no driver is not usable for VFIO (its group node and cdev are gone) and the library says how to
    /// bind it (an unbound device, unlike one on a host driver, keeps its group viable): the real kernel unbinds the
    /// second edu from vfio-pci through sysfs and binds it back afterwards (driver_override stays vfio-pci,
    /// drivers_probe); the simulator builds the machine with that device bound to no driver. IOMMU modes only: without
    /// an IOMMU an unbound device has no group at all (vfio-noiommu makes one when it binds).
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
            new Vfio.Samples.Edu.EduDriver(edu, useMmap: false).ReadIdentification().ShouldBe(Vfio.Samples.Edu.EduDriver.Identification);
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
