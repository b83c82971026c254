// SPDX-License-Identifier: MIT
using Shouldly;
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
