// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>
/// Vfio.Core's generic device layer (VfioDevice) driving the simulated edu through Type1 v2: the same calls the
/// real-kernel tier makes (tests/Vfio.Kernel.Tests/VfioDeviceKernelTests.cs).
/// </summary>
public sealed class GenericDeviceLayerTests
{
    private const ulong Iova = 0x100000;

    private sealed class Edu : IDisposable
    {
        private readonly ProcessPages _memory = new(2 * ProcessPages.PageSize);

        internal Edu()
        {
            var topology = new SimulatedTopology().AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(2) });
            Kernel = new SimulatedKernel(topology);
            VfioException.ThrowIfFailed(Kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container), "open", "container");
            Container = container;
            VfioException.ThrowIfFailed(Kernel.Open("/dev/vfio/2", OpenFlags.ReadWrite, out SafeFileHandle group), "open", "group");
            Group = group;
            int fd = (int)Container.DangerousGetHandle();
            VfioException.ThrowIfFailed(Kernel.Ioctl(Group, VfioUapi.VFIO_GROUP_SET_CONTAINER, MemoryMarshal.AsBytes(new Span<int>(ref fd))), "SET_CONTAINER", "group 2");
            VfioException.ThrowIfFailed(Kernel.Ioctl(Container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU), "SET_IOMMU", "container");
            byte[] name = "0000:00:02.0\0"u8.ToArray();
            int deviceFd = VfioException.ThrowIfFailed(Kernel.Ioctl(Group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name.AsSpan()), "GET_DEVICE_FD", "edu");
            Device = new VfioDevice(Kernel, new SafeFileHandle(deviceFd, ownsHandle: true), "0000:00:02.0", ownsHandle: true);
        }

        internal SimulatedKernel Kernel { get; }
        internal SafeFileHandle Container { get; }
        internal SafeFileHandle Group { get; }
        internal VfioDevice Device { get; }
        internal nint Pages => _memory.Address;

        internal void Map(ulong size)
        {
            var map = new vfio_iommu_type1_dma_map
            {
                argsz = 32,
                flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE,
                vaddr = (ulong)Pages,
                iova = Iova,
                size = size,
            };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Container, VfioUapi.VFIO_IOMMU_MAP_DMA, MemoryMarshal.AsBytes(new Span<vfio_iommu_type1_dma_map>(ref map))), "MAP_DMA", "container");
        }

        internal void Unmap(ulong size)
        {
            var unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, iova = Iova, size = size };
            VfioException.ThrowIfFailed(Kernel.Ioctl(Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, MemoryMarshal.AsBytes(new Span<vfio_iommu_type1_dma_unmap>(ref unmap))), "UNMAP_DMA", "container");
        }

        internal void EnableBusMaster()
        {
            int config = (int)VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX;
            Device.WriteRegion16(config, 4, (ushort)(Device.ReadRegion16(config, 4) | 0x4));
        }

        /// <summary>edu's DMA engine: source, destination, count, command; waits for the busy bit to clear.</summary>
        internal void Dma(VfioRegionMapping bar0, ulong source, ulong destination, ulong count, ulong command)
        {
            bar0.Write64(0x80, source);
            bar0.Write64(0x88, destination);
            bar0.Write64(0x90, count);
            bar0.Write64(0x98, command | 1);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while ((bar0.Read64(0x98) & 1) != 0)
            {
                DateTime.UtcNow.ShouldBeLessThan(deadline);
                Thread.Sleep(1);
            }
        }

        public void Dispose()
        {
            Device.Dispose();
            Group.Dispose();
            Container.Dispose();
            Kernel.Dispose();
            _memory.Dispose();
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_info")]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Info_RegionsAndIrqs_AsTheRealKernelReportsThem()
    {
        using var edu = new Edu();
        edu.Device.Info.IsPci.ShouldBeTrue();
        edu.Device.Info.RegionCount.ShouldBe(9);
        edu.Device.Info.IrqCount.ShouldBe(5);
        VfioRegionInfo bar0 = edu.Device.GetRegion(0);
        bar0.Size.ShouldBe(1UL << 20);
        bar0.CanMmap.ShouldBeTrue();
        edu.Device.GetRegion((int)VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX).Offset.ShouldBe(7UL << 40);
        Should.Throw<VfioException>(() => edu.Device.GetRegion(8)).Errno.ShouldBe(Errno.EINVAL);
        edu.Device.GetIrq(0).IsAutomasked.ShouldBeTrue();
        edu.Device.GetIrq(1).Count.ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Registers_ThroughMmapAndPread_IdentificationLivenessFactorial()
    {
        using var edu = new Edu();
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        bar0.Read32(0x00).ShouldBe(0x010000edu);
        edu.Device.ReadRegion32(0, 0x00).ShouldBe(0x010000edu);
        bar0.Write32(0x04, 0x0f0f0f0f);
        edu.Device.ReadRegion32(0, 0x04).ShouldBe(0xf0f0f0f0u);
        edu.Device.WriteRegion32(0, 0x08, 5);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((bar0.Read32(0x20) & 1) != 0)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline);
            Thread.Sleep(1);
        }
        bar0.Read32(0x08).ShouldBe(120u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_core_mmap")]
    public void Registers_ThroughAnMmioWindow_ReachTheModel()
    {
        using var edu = new Edu();
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        bar0.Areas[0].Mapping.RoutesAccesses.ShouldBeTrue();
        using (MmioWindow regs = bar0.Acquire(0, 0x100))
        {
            regs.Read32(0x00).ShouldBe(0x010000edu);
            regs.Write32(0x04, 0x0f0f0f0f);
            regs.Read32(0x04).ShouldBe(0xf0f0f0f0u);     // liveness: the model computed the NOT
            regs.Write32(0x08, 5);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while ((regs.Read32(0x20) & 1) != 0)
            {
                DateTime.UtcNow.ShouldBeLessThan(deadline);
                Thread.Sleep(1);
            }
            regs.Read32(0x08).ShouldBe(120u);            // factorial, computed by the model
            regs.Write64(0x80, 0x1122334455667788);
            regs.Read64(0x80).ShouldBe(0x1122334455667788ul);
        }
        // A window at an offset: its offset 0 is the DMA source register at 0x80.
        using (MmioWindow dma = bar0.Acquire(0x80, 0x20))
        {
            dma.MappingOffset.ShouldBe(0x80ul);
            dma.Read64(0).ShouldBe(0x1122334455667788ul);
            Should.Throw<ArgumentOutOfRangeException>(() => { using MmioWindow w = bar0.Acquire(0x80, 0x20); _ = w.Read32(0x20); })
                .Message.ShouldContain("mapping offset 0x80");
            dma.Write32(0x08, 0xdeadbeef);
            edu.Device.ReadRegion32(0, 0x88).ShouldBe(0xdeadbeefu);
        }
        bar0.Dispose();
        Should.Throw<ObjectDisposedException>(() => bar0.Acquire(0, 4));
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void DmaRoundTrip_RamToEduToRam_MatchesByteForByte_ThenBlockedAfterUnmap()
    {
        using var edu = new Edu();
        edu.Map(0x2000);
        edu.EnableBusMaster();
        byte[] pattern = new byte[1024];
        new Random(42).NextBytes(pattern);
        Marshal.Copy(pattern, 0, edu.Pages, pattern.Length);
        Marshal.Copy(new byte[1024], 0, edu.Pages + 4096, 1024);
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);

        edu.Dma(bar0, Iova, 0x40000, 1024, 0);                // RAM -> edu buffer
        edu.Dma(bar0, 0x40000, Iova + 4096, 1024, 2);         // edu buffer -> RAM
        byte[] back = new byte[1024];
        Marshal.Copy(edu.Pages + 4096, back, 0, back.Length);
        back.ShouldBe(pattern);
        edu.Kernel.DmaFaults.ShouldBeEmpty();

        edu.Unmap(0x2000);
        Marshal.Copy(new byte[1024], 0, edu.Pages + 4096, 1024);
        edu.Dma(bar0, 0x40000, Iova + 4096, 1024, 2);
        Marshal.Copy(edu.Pages + 4096, back, 0, back.Length);
        back.ShouldBe(new byte[1024]);
        DmaFault fault = edu.Kernel.DmaFaults.ShouldHaveSingleItem();
        fault.Device.ShouldBe("0000:00:02.0");
        fault.Iova.ShouldBe(Iova + 4096);
        fault.Write.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public async Task Msi_ThroughInterruptEvents_NoneLostNoneExtra()
    {
        using var edu = new Edu();
        edu.EnableBusMaster();
        using var msi = new InterruptEvent();
        edu.Device.SetIrqEventFds((int)VfioUapi.VFIO_PCI_MSI_IRQ_INDEX, 0, [msi]);
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        ulong total = 0;
        for (int i = 0; i < 100; i++)
        {
            bar0.Write32(0x60, 1);
            total += await msi.WaitAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            bar0.Write32(0x64, 1);
        }
        total.ShouldBe(100UL);
        msi.TryWait(out _).ShouldBeFalse();
        edu.Device.DisableIrq((int)VfioUapi.VFIO_PCI_MSI_IRQ_INDEX);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_AutomaskedUntilUnmask_ThenArrivesAgain()
    {
        using var edu = new Edu();
        using var intx = new InterruptEvent();
        edu.Device.SetIrqEventFds((int)VfioUapi.VFIO_PCI_INTX_IRQ_INDEX, 0, [intx]);
        using VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        bar0.Write32(0x60, 1);
        intx.TryWait(TimeSpan.FromSeconds(10), out ulong first).ShouldBeTrue();
        first.ShouldBe(1UL);
        bar0.Write32(0x64, 1);
        bar0.Write32(0x60, 1);
        intx.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse();   // masked by the first interrupt
        edu.Device.UnmaskIrq((int)VfioUapi.VFIO_PCI_INTX_IRQ_INDEX);
        intx.TryWait(TimeSpan.FromSeconds(10), out ulong second).ShouldBeTrue(); // still asserted: fires at unmask
        second.ShouldBe(1UL);
    }
}
