// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Devices.Pci.Tests;

public sealed class VfioPciDeviceTests
{
    [Fact]
    public void Edu_identity_comes_from_its_configuration_header()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);

        edu.VendorId.ShouldBe((ushort)0x1234);
        edu.DeviceId.ShouldBe((ushort)0x11e8);
        edu.HeaderType.ShouldBe((byte)0);
        edu.InterruptPin.ShouldBe((byte)1);
        edu.ToString().ShouldBe("PCI device 0000:00:02.0 [1234:11e8] class 00ff00");
    }

    [Fact]
    public void Command_helpers_set_and_clear_single_bits()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);

        edu.SetBusMaster(true);
        edu.SetMemorySpace(true);
        (edu.ReadCommand() & (PciCommand.BusMaster | PciCommand.MemorySpace)).ShouldBe(PciCommand.BusMaster | PciCommand.MemorySpace);
        edu.SetBusMaster(false);
        (edu.ReadCommand() & PciCommand.BusMaster).ShouldBe(PciCommand.None);
        (edu.ReadCommand() & PciCommand.MemorySpace).ShouldBe(PciCommand.MemorySpace);
        edu.SetIntxDisabled(true);
        (edu.ReadCommand() & PciCommand.InterruptDisable).ShouldBe(PciCommand.InterruptDisable);
        Should.Throw<ArgumentException>(() => edu.UpdateCommand(PciCommand.BusMaster, PciCommand.BusMaster));
    }

    [Fact]
    public void The_msix_device_lists_msix_and_pci_express_and_its_table_layout()
    {
        using var testbed = new SimulatedTestbed(iommufd: true);
        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);

        nvme.FindCapability(PciCapabilityId.MsiX).ShouldNotBeNull();
        nvme.FindCapability(PciCapabilityId.PciExpress).ShouldNotBeNull();
        nvme.ConfigSize.ShouldBe(PciConfigRegister.ExtendedSize);
        nvme.MsixLayout.ShouldBe(new PciMsixLayout(nvme.FindCapability(PciCapabilityId.MsiX)!.Value.Offset, 65, 0, MsixTestDevice.TableOffset, 0, MsixTestDevice.PbaOffset));
    }

    [Theory]
    [InlineData(-1, 1)]
    [InlineData(0x100, 1)]
    [InlineData(0xFF, 2)]
    [InlineData(0x02, 4)]
    public void Config_accesses_outside_the_space_or_misaligned_are_refused(int offset, int size)
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);

        var e = Should.Throw<ArgumentOutOfRangeException>(() => _ = size switch
        {
            1 => edu.ReadConfig8(offset),
            2 => edu.ReadConfig16(offset),
            _ => edu.ReadConfig32(offset),
        });
        e.Message.ShouldContain(SimulatedMachines.Edu);
    }
}

public sealed class VfioPciDeviceMsixHoleTests
{
    private const string Address = "0000:00:07.0";

    [Fact]
    public void A_kernel_without_msix_mappable_gets_the_table_and_pba_pages_left_out()
    {
        // A kernel before MSIX_MAPPABLE: no sparse areas, no MSIX_MAPPABLE, mmap of the table pages refused.
        var topology = new SimulatedTopology().AddPci(Address, iommuGroup: 7, new MsixTestDevice(vectors: 8, sparseMmap: false) { MsixMappable = false });
        using var testbed = new SimulatedTestbed(topology: topology);
        VfioPciDevice device = testbed.Open(Address);
        device.SetMemorySpace(true);
        PciBar bar0 = device.GetBar(0);
        bar0.Region.IsMsixMappable.ShouldBeFalse();
        Should.Throw<VfioException>(() => device.Device.MapRegion(0)).Errno.ShouldBe(Errno.EINVAL);   // the whole BAR cannot be mapped

        device.LeavesOutMsix(0).ShouldBeTrue();
        device.GetMapAreas(0).ShouldBe([new VfioSparseMmapArea(0, MsixTestDevice.TableOffset)]);

        VfioRegionMapping mapping = device.MapBar(0);

        mapping.Areas.Select(a => (a.Offset, a.Size)).ShouldBe([(0UL, (ulong)MsixTestDevice.TableOffset)]);
        using (MmioWindow window = mapping.Acquire(0, 8))
        {
            window.Read32(0).ShouldBe(MsixTestDevice.Identification);
        }
        mapping.IsMapped(MsixTestDevice.TableOffset, 16).ShouldBeFalse();
        device.Device.ReadRegion32(0, MsixTestDevice.PbaOffset).ShouldBe(0u);   // the PBA stays reachable by pread
    }

    [Fact]
    public void Map_areas_are_the_whole_bar_or_the_kernels_sparse_areas_and_none_for_a_bar_that_cannot_be_mapped()
    {
        var topology = new SimulatedTopology().AddPci(Address, iommuGroup: 7, new MsixTestDevice(vectors: 8, sparseMmap: true));
        using var testbed = new SimulatedTestbed(topology: topology);
        VfioPciDevice sparse = testbed.Open(Address);
        sparse.LeavesOutMsix(0).ShouldBeFalse();   // the kernel's sparse areas already leave the table out
        sparse.GetMapAreas(0).ShouldBe(sparse.GetBar(0).Region.SparseMmapAreas!.Where(static a => a.Size != 0).OrderBy(static a => a.Offset));

        using var machine = new SimulatedTestbed();
        VfioPciDevice edu = machine.Open(SimulatedMachines.Edu);
        edu.GetMapAreas(0).ShouldBe([new VfioSparseMmapArea(0, 1UL << 20)]);
        edu.LeavesOutMsix(0).ShouldBeFalse();
        edu.GetMapAreas(1).ShouldBeEmpty();   // unimplemented
        Should.Throw<ArgumentOutOfRangeException>(() => edu.GetMapAreas(6)).Message.ShouldContain(SimulatedMachines.Edu);
        Should.Throw<ArgumentOutOfRangeException>(() => edu.LeavesOutMsix(-1));
    }

    [Fact]
    public void Large_bars_are_mapped_at_their_size_boundary_capped_at_1_GiB()
    {
        // QEMU's placement (the size rounded up to a power of two, at most 1 GiB), on the simulator's anonymous backing:
        // a 2 GiB BAR at a 1 GiB boundary, a 32 MiB one at 32 MiB.
        var topology = new SimulatedTopology().AddPci(Address, iommuGroup: 7, new LargeBarDevice());
        using var testbed = new SimulatedTestbed(topology: topology);
        VfioPciDevice device = testbed.Open(Address);
        device.SetMemorySpace(true);

        MemoryMapping huge = device.MapBar(0).Areas.ShouldHaveSingleItem().Mapping;
        MemoryMapping bar2 = device.MapBar(2).Areas.ShouldHaveSingleItem().Mapping;

        ((ulong)huge.DangerousGetHandle() % (1UL << 30)).ShouldBe(0UL);
        huge.Length.ShouldBe(LargeBarDevice.Bar0Size);
        ((ulong)bar2.DangerousGetHandle() % (32UL << 20)).ShouldBe(0UL);
        bar2.Length.ShouldBe(LargeBarDevice.Bar2Size);
        device.MapBar(0).Read32(LargeBarDevice.Bar0Size - 4).ShouldBe(LargeBarDevice.Signature);
        device.MapBar(2).Read32(0).ShouldBe(LargeBarDevice.Signature);
    }

    /// <summary>A device with a 2 GiB 64-bit prefetchable BAR0 and a 32 MiB BAR2; every register reads
    /// <see cref="Signature"/>.</summary>
    private sealed class LargeBarDevice : EmulatedPciDevice
    {
        internal const ulong Bar0Size = 2UL << 30;
        internal const ulong Bar2Size = 32UL << 20;
        internal const uint Signature = 0x600dba5e;

        private readonly Vfio.Simulator.PciBar?[] _bars =
            [new Vfio.Simulator.PciBar(Bar0Size, is64Bit: true, prefetchable: true), null, new Vfio.Simulator.PciBar(Bar2Size), null, null, null];

        public override ushort VendorId => 0x1b36;

        public override ushort DeviceId => 0x0baf;

        public override uint ClassCode => 0xff0000;

        public override IReadOnlyList<Vfio.Simulator.PciBar?> Bars => _bars;

        protected override ulong ReadBar(int bar, ulong offset, int width) => Signature;

        protected override void WriteBar(int bar, ulong offset, int width, ulong value)
        {
        }
    }

    [Fact]
    public void The_testbed_option_rom_is_read_back_whole()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.EduBehindRootPort);

        edu.TryReadRom(out byte[]? rom).ShouldBeTrue();
        rom.ShouldBe(SimulatedMachines.TestbedOptionRom());
    }
}
