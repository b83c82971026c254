// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>The edu model through vfio-pci in no-IOMMU mode: registers, interrupts, DMA (QEMU's edu device, as the testbed boots it: tests/testbed/README.md).</summary>
public sealed class EduTests
{
    private const uint Trigger = VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
    private const uint Unmask = VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK;

    // No-IOMMU tests DMA to process addresses, so the mask is all-ones (the testbed's dma_mask=0xffffffffffffffff).
    private static EduDevice Edu() => new(ulong.MaxValue) { DmaDelay = TimeSpan.FromMilliseconds(5) };

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Identification_ThroughPRead()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Read32(0, 0x00).ShouldBe(0x010000edu);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Liveness_ReadsTheBitwiseNot()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Write32(0, 0x04, 0x12345678);
        m.Read32(0, 0x04).ShouldBe(~0x12345678u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Factorial_ThroughPReadPWrite()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Write32(0, 0x08, 10);
        NoIommuDevice.WaitFor(() => (m.Read32(0, 0x20) & 1) == 0);
        m.Read32(0, 0x08).ShouldBe(3628800u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Registers_ThroughMmap()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Kernel.Map(m.Device, 0, 0x100000, MemoryProtection.ReadWrite, out MemoryMapping? bar).ShouldBe(0);
        using (bar)
        {
            bar!.Length.ShouldBe(0x100000ul);
            bar.Read32(0x00).ShouldBe(0x010000edu);
            bar.Write32(0x04, 0xf0f0f0f0);
            bar.Read32(0x04).ShouldBe(0x0f0f0f0fu);
            bar.Write32(0x08, 5);
            NoIommuDevice.WaitFor(() => (bar.Read32(0x20) & 1) == 0);
            bar.Read32(0x08).ShouldBe(120u);
            bar.Write64(0x80, 0x1122334455667788);
            bar.Read64(0x80).ShouldBe(0x1122334455667788ul);
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void NarrowAccessBelow0x80_ReadsAllOnesAndIsIgnored()
    {
        using var m = NoIommuDevice.Pci(Edu());
        byte[] two = new byte[2];
        m.Kernel.PRead(m.Device, two, 0x00).ShouldBe(2);
        two.ShouldBe(new byte[] { 0xff, 0xff });
        m.Write32(0, 0x04, 0);
        m.Kernel.PWrite(m.Device, new byte[] { 1 }, 0x04).ShouldBe(1);
        m.Read32(0, 0x04).ShouldBe(0xffffffffu);
        m.Read64(0, 0x00).ShouldBe(ulong.MaxValue); // 8-byte access below 0x80
        m.Read32(0, 0x40).ShouldBe(0xffffffffu);    // unassigned register
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void DmaRegisters_64And32BitAccess()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Write64(0, 0x88, 0xabcdef0123456789);
        m.Read64(0, 0x88).ShouldBe(0xabcdef0123456789ul);
        m.Write32(0, 0x90, 0x40);
        m.Read64(0, 0x90).ShouldBe(0x40ul);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_RaiseFiresOnce_AckAndUnmaskFiresAgain()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var intx = new InterruptEvent();
        m.SetEventFds(0, 0, intx).ShouldBe(0);
        m.Write32(0, 0x60, 0x10);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.Read32(0, 0x24).ShouldBe(0x10u);
        m.Write32(0, 0x60, 0x20);                 // masked: no second signal
        NoIommuDevice.Quiet(intx).ShouldBeTrue();
        m.Write32(0, 0x64, 0x30);                 // acknowledge: the line drops
        m.Read32(0, 0x24).ShouldBe(0u);
        m.Action(0, Unmask).ShouldBe(0);
        NoIommuDevice.Quiet(intx).ShouldBeTrue();
        m.Write32(0, 0x60, 0x1);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_UnmaskWhileStillPending_ResignalsAndStaysMasked()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var intx = new InterruptEvent();
        m.SetEventFds(0, 0, intx).ShouldBe(0);
        m.Write32(0, 0x60, 0x1);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.Action(0, Unmask).ShouldBe(0);          // not acknowledged: still pending
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.Write32(0, 0x64, 0x1);
        m.Write32(0, 0x60, 0x1);                  // still masked after the re-signal
        NoIommuDevice.Quiet(intx).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_UnmaskEventfd_SignallingItUnmasks()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var intx = new InterruptEvent();
        using var resample = new InterruptEvent();
        m.SetEventFds(0, 0, intx).ShouldBe(0);
        byte[] fd = BitConverter.GetBytes((int)resample.Handle.DangerousGetHandle());
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, fd).ShouldBe(0);
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, fd).ShouldBe(-(int)Errno.EBUSY);
        m.Write32(0, 0x60, 0x1);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        resample.Signal();                         // still pending: the unmask re-signals
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.Write32(0, 0x64, 0x1);
        resample.Signal();                         // acknowledged: now really unmasked
        m.Write32(0, 0x60, 0x2);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, BitConverter.GetBytes(-1)).ShouldBe(0);
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, BitConverter.GetBytes(999_999)).ShouldBe(-(int)Errno.EBADF);
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, fd).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_EnabledWhileLineAsserted_FiresAtOnce()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Write32(0, 0x60, 0x1);
        using var intx = new InterruptEvent();
        m.SetEventFds(0, 0, intx).ShouldBe(0);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Msi_RaiseFiresEveryTime_NeedsBusMaster()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var msi = new InterruptEvent();
        m.SetEventFds(1, 0, msi).ShouldBe(0);
        m.Write32(0, 0x60, 0x1);
        NoIommuDevice.Quiet(msi).ShouldBeTrue(); // no bus master: the message write is lost
        m.EnableBusMaster();
        m.Write32(0, 0x60, 0x1);
        NoIommuDevice.Fired(msi).ShouldBeTrue();
        m.Write32(0, 0x60, 0x2);                 // MSI is edge: every raise sends
        NoIommuDevice.Fired(msi).ShouldBeTrue();
        m.Read32(0, 0x24).ShouldBe(0x3u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Msi_SecondVector_Einval_NoResize()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var msi = new InterruptEvent();
        m.SetEventFds(1, 0, msi, msi).ShouldBe(-(int)Errno.EINVAL); // only one vector (count check)
        m.SetEventFds(1, 0, msi).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Factorial_WithInterruptFlag_RaisesIrqOne()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using var intx = new InterruptEvent();
        m.SetEventFds(0, 0, intx).ShouldBe(0);
        m.Write32(0, 0x20, 0x80);
        m.Write32(0, 0x08, 4);
        NoIommuDevice.Fired(intx).ShouldBeTrue();
        m.Read32(0, 0x24).ShouldBe(0x1u);
        m.Read32(0, 0x08).ShouldBe(24u);
        m.Read32(0, 0x20).ShouldBe(0x80u);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Dma_RoundTrip_RamToEduToRam_MatchesByteForByte()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.EnableBusMaster();
        // No IOMMU: the device is given physical addresses, those /proc/self/pagemap reports for locked memory.
        using PhysicalDmaBuffer memory = PhysicalDmaBuffer.Allocate(m.Kernel, 2 * 4096);
        byte[] pattern = new byte[4096];
        new Random(42).NextBytes(pattern);
        pattern.CopyTo(memory.GetSpan(0, 4096));

        m.Write64(0, 0x80, memory.GetPhysicalAddress(0));
        m.Write64(0, 0x88, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x90, 4096);
        m.Write64(0, 0x98, 0x1);                    // RAM -> device
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);

        m.Write64(0, 0x80, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x88, memory.GetPhysicalAddress(4096));
        m.Write64(0, 0x90, 4096);
        m.Write64(0, 0x98, 0x3);                    // device -> RAM
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);

        memory.GetSpan(4096, 4096).ToArray().ShouldBe(pattern);
        m.Kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
    public void Dma_ToAProcessAddress_IsNotPhysicalMemory_Refused()
    {
        using var m = NoIommuDevice.Pci(new EduDevice(ulong.MaxValue) { DmaDelay = TimeSpan.FromMilliseconds(5) });
        m.EnableBusMaster();
        using PhysicalDmaBuffer memory = PhysicalDmaBuffer.Allocate(m.Kernel, 4096);
        memory.GetSpan(0, 8).Fill(0x5a);
        ulong processAddress = (ulong)memory.Address;
        processAddress.ShouldNotBe(memory.GetPhysicalAddress(0));

        m.Write64(0, 0x80, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x88, processAddress);         // a driver bug: the virtual address
        m.Write64(0, 0x90, 8);
        m.Write64(0, 0x98, 0x3);
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);

        memory.GetSpan(0, 8).ToArray().ShouldAllBe(b => b == 0x5a);
        DmaFault fault = m.Kernel.DmaFaults.ShouldHaveSingleItem();
        fault.Iova.ShouldBe(processAddress);
        fault.Reason.ShouldContain("physical address");
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Dma_WithIrqFlag_RaisesMsiAndStatus0x100()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.EnableBusMaster();
        using var msi = new InterruptEvent();
        m.SetEventFds(1, 0, msi).ShouldBe(0);
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(m.Kernel, 4096);
        m.Write64(0, 0x80, buffer.GetPhysicalAddress(0));
        m.Write64(0, 0x88, EduDevice.DmaBufferAddress + 128);
        m.Write64(0, 0x90, 64);
        m.Write64(0, 0x98, 0x1 | 0x4);
        NoIommuDevice.Fired(msi, 5000).ShouldBeTrue();
        m.Read32(0, 0x24).ShouldBe(0x100u);
        m.Kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Dma_WithoutBusMaster_TransfersNothing()
    {
        using var m = NoIommuDevice.Pci(Edu());
        using PhysicalDmaBuffer target = PhysicalDmaBuffer.Allocate(m.Kernel, 4096);
        target.GetSpan(0, 8).Fill(0x5a);
        m.Write64(0, 0x80, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x88, target.GetPhysicalAddress(0));
        m.Write64(0, 0x90, 8);
        m.Write64(0, 0x98, 0x3);
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);
        target.GetSpan(0, 8).ToArray().ShouldAllBe(b => b == 0x5a);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Dma_OutsideTheDeviceBuffer_IsRefusedAndRecorded()
    {
        var edu = Edu();
        using var m = NoIommuDevice.Pci(edu);
        m.EnableBusMaster();
        m.Write64(0, 0x80, 0x1000);
        m.Write64(0, 0x88, EduDevice.DmaBufferAddress + 4000);
        m.Write64(0, 0x90, 200);
        m.Write64(0, 0x98, 0x1);
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);
        edu.GuestErrors.Count.ShouldBe(1);
        edu.GuestErrors[0].ShouldContain("out of bounds");
        m.Kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
    public void Dma_DefaultMask_ClampsTheAddressTo28Bits()
    {
        var edu = new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(5) };
        edu.DmaMask.ShouldBe(0x0fffffffUL);
        using var m = NoIommuDevice.Pci(edu);
        m.EnableBusMaster();
        // 0x10000000 clamps to 0, where the simulated machine has no memory: the access is recorded as a fault.
        m.Write64(0, 0x80, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x88, 0x1000_0000);
        m.Write64(0, 0x90, 8);
        m.Write64(0, 0x98, 0x3);
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);
        m.Kernel.DmaFaults.ShouldHaveSingleItem().Iova.ShouldBe(0ul);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Dma_RegistersLockedWhileRunning()
    {
        var edu = new EduDevice(ulong.MaxValue) { DmaDelay = TimeSpan.FromMilliseconds(300) };
        using var m = NoIommuDevice.Pci(edu);
        m.EnableBusMaster();
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(m.Kernel, 4096);
        m.Write64(0, 0x80, buffer.GetPhysicalAddress(0));
        m.Write64(0, 0x88, EduDevice.DmaBufferAddress);
        m.Write64(0, 0x90, 16);
        m.Write64(0, 0x98, 0x1);
        m.Write64(0, 0x90, 32);                    // ignored while busy
        m.Read64(0, 0x90).ShouldBe(16ul);
        (m.Read64(0, 0x98) & 1).ShouldBe(1ul);
        NoIommuDevice.WaitFor(() => (m.Read64(0, 0x98) & 1) == 0);
        m.Kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_device_fd")]
    public void DeviceState_PersistsAcrossReopenWithoutFlr()
    {
        using var m = NoIommuDevice.Pci(Edu());
        m.Write32(0, 0x04, 7);
        m.Reopen("0000:00:02.0");
        m.Read32(0, 0x04).ShouldBe(~7u);
        (m.ReadConfig16(0x04) & 0x4).ShouldBe(0); // bus master cleared at close
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_unmap")]
    public void Dma_ThroughType1_RoundTripThenFaultAfterUnmap()
    {
        var topology = new SimulatedTopology().AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(5) });
        using var kernel = new SimulatedKernel(topology);
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle container).ShouldBe(0);
        kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out Microsoft.Win32.SafeHandles.SafeFileHandle group).ShouldBe(0);
        using var memory = new ProcessPages(2 * ProcessPages.PageSize);
        using (container)
        using (group)
        {
            int fd = (int)container.DangerousGetHandle();
            kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, MemoryMarshal.AsBytes(new Span<int>(ref fd))).ShouldBe(0);
            kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
            byte[] name = System.Text.Encoding.ASCII.GetBytes("0000:00:02.0\0");
            int deviceFd = kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan());
            deviceFd.ShouldBeGreaterThanOrEqualTo(0);
            using var device = new Microsoft.Win32.SafeHandles.SafeFileHandle(deviceFd, ownsHandle: true);

            nint pages = memory.Address;
            byte[] pattern = new byte[256];
            new Random(7).NextBytes(pattern);
            Marshal.Copy(pattern, 0, pages, 256);
            Marshal.Copy(new byte[256], 0, pages + 4096, 256);
            var map = new vfio_iommu_type1_dma_map
            {
                argsz = 32,
                flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE,
                vaddr = (ulong)pages,
                iova = 0x100000,
                size = 0x2000,
            };
            kernel.Ioctl(container, VfioUapi.VFIO_IOMMU_MAP_DMA, MemoryMarshal.AsBytes(new Span<vfio_iommu_type1_dma_map>(ref map))).ShouldBe(0);

            void Write64(ulong offset, ulong value)
            {
                byte[] b = BitConverter.GetBytes(value);
                kernel.PWrite(device, b, (long)offset).ShouldBe(8);
            }
            ulong Read64(ulong offset)
            {
                byte[] b = new byte[8];
                kernel.PRead(device, b, (long)offset).ShouldBe(8);
                return BitConverter.ToUInt64(b);
            }
            void Dma(ulong src, ulong dst, ulong count, ulong cmd)
            {
                Write64(0x80, src);
                Write64(0x88, dst);
                Write64(0x90, count);
                Write64(0x98, cmd);
                NoIommuDevice.WaitFor(() => (Read64(0x98) & 1) == 0);
            }
            byte[] command = new byte[2];
            kernel.PRead(device, command, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, 4)).ShouldBe(2);
            command[0] |= 0x4;
            kernel.PWrite(device, command, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, 4)).ShouldBe(2);

            Dma(0x100000, EduDevice.DmaBufferAddress, 256, 0x1);
            Dma(EduDevice.DmaBufferAddress, 0x101000, 256, 0x3);
            byte[] result = new byte[256];
            Marshal.Copy(pages + 4096, result, 0, 256);
            result.ShouldBe(pattern);
            kernel.DmaFaults.ShouldBeEmpty();

            var unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, iova = 0x100000, size = 0x2000 };
            kernel.Ioctl(container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, MemoryMarshal.AsBytes(new Span<vfio_iommu_type1_dma_unmap>(ref unmap))).ShouldBe(0);
            Marshal.Copy(new byte[256], 0, pages + 4096, 256);
            Dma(EduDevice.DmaBufferAddress, 0x101000, 256, 0x3);
            Marshal.Copy(pages + 4096, result, 0, 256);
            result.ShouldBe(new byte[256]);
            DmaFault fault = kernel.DmaFaults.ShouldHaveSingleItem();
            fault.Iova.ShouldBe(0x101000ul);
            fault.Write.ShouldBeTrue();
        }
    }
}
