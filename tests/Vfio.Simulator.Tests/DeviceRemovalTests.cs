// SPDX-License-Identifier: MIT
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using static Vfio.Simulator.Tests.IommuFdTestKit;

namespace Vfio.Simulator.Tests;

/// <summary>Fault injection: the device request (REQ IRQ) and surprise removal of a device.</summary>
public sealed class DeviceRemovalTests
{
    private const string Edu = "0000:00:02.0";
    private const int ENODEV = -(int)Errno.ENODEV;

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void RequestDeviceRemoval_SignalsTheReqEventFd()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.RequestDeviceRemoval(Edu).ShouldBeFalse("no request eventfd registered yet");
        using var req = new InterruptEvent();
        m.SetEventFds(VfioUapi.VFIO_PCI_REQ_IRQ_INDEX, 0, req).ShouldBe(0);
        m.Kernel.RequestDeviceRemoval(Edu).ShouldBeTrue();
        req.TryWait(out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL, "one signal per call");
        m.Kernel.RequestDeviceRemoval(Edu).ShouldBeTrue();
        req.TryWait(out _).ShouldBeTrue();
        Should.Throw<ArgumentException>(() => m.Kernel.RequestDeviceRemoval("0000:00:09.0"));
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void RemoveDevice_DeviceFdFailsWithEnodev_MappingReadsAllOnes()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Map(m.Device, 0, 0x100000, MemoryProtection.ReadWrite, out MemoryMapping? bar).ShouldBe(0);
        using (bar)
        {
            bar!.Read32(0x00).ShouldBe(0x010000edu);
            m.Kernel.RemoveDevice(Edu);
            bar.Read32(0x00).ShouldBe(uint.MaxValue);
            bar.Write32(0x04, 1);
            bar.Read64(0x80).ShouldBe(ulong.MaxValue);
        }
        m.GetInfo(out _).ShouldBe(ENODEV);
        byte[] four = new byte[4];
        m.Kernel.PRead(m.Device, four, NoIommuDevice.Offset(0, 0)).ShouldBe(ENODEV);
        m.Kernel.PWrite(m.Device, four, NoIommuDevice.Offset(0, 4)).ShouldBe(ENODEV);
        m.Kernel.Map(m.Device, 0, 0x1000, MemoryProtection.Read, out _).ShouldBe(ENODEV);
        m.Kernel.RequestDeviceRemoval(Edu).ShouldBeFalse();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void RemoveDevice_GoneFromSysfsAndGroup()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Exists($"/sys/bus/pci/devices/{Edu}").ShouldBeTrue();
        m.Kernel.RemoveDevice(Edu);
        m.Kernel.Exists($"/sys/bus/pci/devices/{Edu}").ShouldBeFalse();
        m.Kernel.Exists($"/sys/devices/pci0000:00/{Edu}").ShouldBeFalse();
        m.Kernel.Exists($"/sys/bus/pci/drivers/vfio-pci/{Edu}").ShouldBeFalse();
        m.Kernel.Exists($"/sys/kernel/iommu_groups/0/devices/{Edu}").ShouldBeFalse();
        m.Kernel.Exists("/dev/vfio/noiommu-0").ShouldBeFalse("the group's last device went");
        byte[] name = Encoding.ASCII.GetBytes(Edu + "\0");
        m.Kernel.Ioctl(m.Group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan()).ShouldBe(ENODEV);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void RemoveDevice_NoMoreDma_NoFaultRecorded()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        SimDevice device = m.Kernel.FindDevice(Edu)!;
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(m.Kernel, 4096);
        device.DmaWrite(buffer.GetPhysicalAddress(0), [1, 2, 3]).ShouldBeTrue();
        m.Kernel.RemoveDevice(Edu);
        device.DmaWrite(buffer.GetPhysicalAddress(0), [9, 9, 9]).ShouldBeFalse();
        buffer.GetSpan(0, 3).ToArray().ShouldBe(new byte[] { 1, 2, 3 });
        m.Kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops_release")]
    public void RemoveDevice_LegacyFds_CloseCleanly()
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready();
        m.GetDeviceFd(group, LegacyMachine.Dev2, out SafeFileHandle device).ShouldBeGreaterThanOrEqualTo(0);
        using var buffer = new ProcessPages(0x2000);
        m.Map(container, buffer.Vaddr, 0x100000, 0x2000).ShouldBe(0);
        m.Kernel.RemoveDevice(LegacyMachine.Dev2);
        m.Kernel.Ioctl(device, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(ENODEV);
        device.Dispose();
        group.Dispose();
        container.Dispose();
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd")]
    public void RemoveDevice_BoundCdev_EnodevAndReleasesEverything()
    {
        using SimulatedKernel kernel = Machine();
        using var buffer = new ProcessPages(2 * ProcessPages.PageSize);
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, buffer.Address, 0x2000, ref iova, Fixed).ShouldBe(0);
        kernel.RemoveDevice(Dev0);
        kernel.Exists("/dev/vfio/devices/vfio0").ShouldBeFalse();
        kernel.Open("/dev/vfio/devices/vfio0", OpenFlags.ReadWrite, out SafeFileHandle again).ShouldBe(-(int)Errno.ENOENT);
        again.Dispose();
        Detach(kernel, cdev).ShouldBe(ENODEV);
        kernel.PRead(cdev, new byte[4], 0).ShouldBe(ENODEV);
        cdev.Dispose();
        iommufd.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }
}
