// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>VFIO_DEVICE_IOEVENTFD on vfio-pci (vfio_pci_ioeventfd): validation, and the kernel's write when the eventfd fires.</summary>
public sealed class IoEventFdTests
{
    private const int EINVAL = -(int)Errno.EINVAL;
    private const uint W32 = VfioUapi.VFIO_DEVICE_IOEVENTFD_32;

    private static int IoEventFd(NoIommuDevice m, uint flags, long offset, ulong data, int fd, uint argsz = 32)
    {
        var cmd = new vfio_device_ioeventfd { argsz = argsz, flags = flags, offset = (ulong)offset, data = data, fd = fd };
        return m.Ioctl(VfioUapi.VFIO_DEVICE_IOEVENTFD, ref cmd);
    }

    private static int Fd(InterruptEvent e) => (int)e.Handle.DangerousGetHandle();

    private static VfioPciDriver Driver(NoIommuDevice m) => (VfioPciDriver)m.Kernel.FindDevice("0000:00:02.0")!.VfioDriver!;

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Signal_WritesTheRegister()
    {
        // edu's liveness register 0x04 reads back the bitwise NOT of the last write.
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        IoEventFd(m, W32, NoIommuDevice.Offset(0, 0x04), 0x1234_5678, Fd(e)).ShouldBe(0);
        m.Read32(0, 0x04).ShouldNotBe(~0x1234_5678u);
        e.Signal();
        NoIommuDevice.WaitFor(() => m.Read32(0, 0x04) == ~0x1234_5678u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Signal_RaisesEduInterrupt()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var irq = new InterruptEvent();
        using var e = new InterruptEvent();
        m.SetEventFds(VfioUapi.VFIO_PCI_INTX_IRQ_INDEX, 0, irq).ShouldBe(0);
        IoEventFd(m, W32, NoIommuDevice.Offset(0, 0x60), 0x40, Fd(e)).ShouldBe(0);
        e.Signal();
        NoIommuDevice.Fired(irq).ShouldBeTrue();
        m.Read32(0, 0x24).ShouldBe(0x40u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Signal_WithMemoryDecodingOff_IsDropped()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        m.Write32(0, 0x04, 0);
        IoEventFd(m, W32, NoIommuDevice.Offset(0, 0x04), 7, Fd(e)).ShouldBe(0);
        ushort command = m.ReadConfig16(0x04);
        m.WriteConfig16(0x04, (ushort)(command & ~0x2));
        e.Signal();
        Thread.Sleep(50);
        m.WriteConfig16(0x04, command);
        m.Read32(0, 0x04).ShouldBe(~0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Validation_ArgszFlagsFd()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        long reg = NoIommuDevice.Offset(0, 0x04);
        IoEventFd(m, W32, reg, 1, Fd(e), argsz: 27).ShouldBe(EINVAL);
        IoEventFd(m, W32, reg, 1, Fd(e), argsz: 28).ShouldBe(0, "minsz is offsetofend(fd)");
        IoEventFd(m, 0, reg, 2, Fd(e)).ShouldBe(EINVAL, "no width");
        IoEventFd(m, VfioUapi.VFIO_DEVICE_IOEVENTFD_16 | W32, reg, 2, Fd(e)).ShouldBe(EINVAL, "two widths");
        IoEventFd(m, 0x10 | W32, reg, 2, Fd(e)).ShouldBe(EINVAL, "unknown flag");
        IoEventFd(m, W32, reg, 2, -2).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Validation_OnlyBarsAndWithinTheBar()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        IoEventFd(m, W32, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, 0x04), 1, Fd(e)).ShouldBe(EINVAL, "config space");
        IoEventFd(m, W32, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_ROM_REGION_INDEX, 0), 1, Fd(e)).ShouldBe(EINVAL);
        IoEventFd(m, W32, NoIommuDevice.Offset(1, 0), 1, Fd(e)).ShouldBe(EINVAL, "edu has no BAR1");
        IoEventFd(m, W32, NoIommuDevice.Offset(0, (1 << 20) - 2), 1, Fd(e)).ShouldBe(EINVAL, "past the BAR end");
        IoEventFd(m, W32, NoIommuDevice.Offset(0, (1 << 20) - 4), 1, Fd(e)).ShouldBe(0);
        IoEventFd(m, VfioUapi.VFIO_DEVICE_IOEVENTFD_64, NoIommuDevice.Offset(0, 0x80), 1, Fd(e)).ShouldBe(0, "x86-64 has iowrite64");
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Validation_MsixTableIsRefused()
    {
        var model = new MsixTestDevice();
        using NoIommuDevice m = NoIommuDevice.Pci(model);
        using var e = new InterruptEvent();
        long table = NoIommuDevice.Offset((uint)model.MsixBar, model.MsixTableOffset);
        IoEventFd(m, W32, table, 1, Fd(e)).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void ExistingEntry_EexistThenTeardownWithMinusOne_Enodev()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        long reg = NoIommuDevice.Offset(0, 0x04);
        IoEventFd(m, W32, reg, 5, -1).ShouldBe(-(int)Errno.ENODEV, "nothing to tear down");
        IoEventFd(m, W32, reg, 5, Fd(e)).ShouldBe(0);
        IoEventFd(m, W32, reg, 5, Fd(e)).ShouldBe(-(int)Errno.EEXIST);
        IoEventFd(m, W32, reg, 6, Fd(e)).ShouldBe(0, "a different data value is a different ioeventfd");
        Driver(m).IoEventFdCount.ShouldBe(2);
        IoEventFd(m, W32, reg, 5, -1).ShouldBe(0);
        IoEventFd(m, W32, reg, 5, -1).ShouldBe(-(int)Errno.ENODEV);
        Driver(m).IoEventFdCount.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void TornDown_SignalWritesNothing()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        m.Write32(0, 0x04, 0);
        long reg = NoIommuDevice.Offset(0, 0x04);
        IoEventFd(m, W32, reg, 9, Fd(e)).ShouldBe(0);
        IoEventFd(m, W32, reg, 9, -1).ShouldBe(0);
        e.Signal();
        Thread.Sleep(50);
        m.Read32(0, 0x04).ShouldBe(~0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void Limit_1000_Enospc()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        long reg = NoIommuDevice.Offset(0, 0x04);
        for (int i = 0; i < VfioPciDriver.IoEventFdMax; i++)
        {
            IoEventFd(m, W32, reg, (ulong)i, Fd(e)).ShouldBe(0);
        }
        IoEventFd(m, W32, reg, 5000, Fd(e)).ShouldBe(-(int)Errno.ENOSPC);
        IoEventFd(m, W32, reg, 0, -1).ShouldBe(0, "teardown still works at the limit");
        m.Reopen("0000:00:02.0");
        Driver(m).IoEventFdCount.ShouldBe(0, "close_device releases every ioeventfd");
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_ioeventfd")]
    public void BadEventFd_EbadfOrEinval()
    {
        using NoIommuDevice m = NoIommuDevice.Pci(new EduDevice());
        long reg = NoIommuDevice.Offset(0, 0x04);
        IoEventFd(m, W32, reg, 1, 100_000).ShouldBe(-(int)Errno.EBADF);
        int notEventFd = (int)m.Device.DangerousGetHandle();
        IoEventFd(m, W32, reg, 1, notEventFd).ShouldBe(EINVAL);
    }
}
