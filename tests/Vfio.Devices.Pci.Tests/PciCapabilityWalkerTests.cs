// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Devices.Pci.Tests;

public sealed class PciCapabilityWalkerTests
{
    private const string Device = "0000:00:03.0";

    [Fact]
    public void No_capability_list_bit_means_no_standard_capabilities()
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize);
        image.Bytes[PciConfigRegister.CapabilitiesPointer] = 0x40; // pointer without the status bit is ignored
        image.Standard(0x40, PciCapabilityId.Msi, 0);

        PciCapabilityWalker.Walk(image.Bytes, Device).ShouldBeEmpty();
    }

    [Fact]
    public void Standard_list_is_walked_in_list_order_with_sizes_up_to_the_next_higher_capability()
    {
        // Like QEMU's nvme: MSI-X at 0x40, PCIe at 0x80, PM at 0x60, listed out of offset order.
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0x40)
            .Standard(0x40, PciCapabilityId.MsiX, 0x80)
            .Standard(0x80, PciCapabilityId.PciExpress, 0x60)
            .Standard(0x60, PciCapabilityId.PowerManagement, 0);

        PciCapability[] caps = PciCapabilityWalker.Walk(image.Bytes, Device);

        caps.ShouldBe([
            new PciCapability((byte)PciCapabilityId.MsiX, 0x40, 0x20, false, 0),
            new PciCapability((byte)PciCapabilityId.PciExpress, 0x80, 0x80, false, 0),
            new PciCapability((byte)PciCapabilityId.PowerManagement, 0x60, 0x20, false, 0),
        ]);
        caps[0].Is(PciCapabilityId.MsiX).ShouldBeTrue();
        caps[0].Is(PciExtendedCapabilityId.AlternativeRoutingId).ShouldBeFalse();
    }

    [Fact]
    public void The_reserved_low_bits_of_standard_pointers_are_masked()
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0x43)
            .Standard(0x40, PciCapabilityId.Msi, 0x51)
            .Standard(0x50, PciCapabilityId.VendorSpecific, 0x02); // 0x02 & 0xFC = 0: end of list

        PciCapabilityWalker.Walk(image.Bytes, Device).Select(c => c.Offset).ShouldBe([0x40, 0x50]);
    }

    [Fact]
    public void A_standard_loop_is_a_typed_error_naming_the_device_and_the_offset()
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0x40)
            .Standard(0x40, PciCapabilityId.Msi, 0x50)
            .Standard(0x50, PciCapabilityId.PowerManagement, 0x40);

        var e = Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device));

        e.Fault.ShouldBe(PciCapabilityListFault.Loop);
        e.IsExtended.ShouldBeFalse();
        e.Offset.ShouldBe(0x40);
        e.Message.ShouldContain(Device);
        e.Message.ShouldContain("loops");
        e.Hint.ShouldNotBeNull().ShouldContain("reset");
    }

    [Fact]
    public void A_capability_pointing_to_itself_is_a_loop()
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0xFC).Standard(0xFC, PciCapabilityId.VendorSpecific, 0xFC);

        Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device)).Fault.ShouldBe(PciCapabilityListFault.Loop);
    }

    [Theory]
    [InlineData(0x04)]
    [InlineData(0x3C)]
    public void A_standard_pointer_into_the_header_is_out_of_range(int pointer)
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0x40).Standard(0x40, PciCapabilityId.Msi, pointer);

        var e = Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device));

        e.Fault.ShouldBe(PciCapabilityListFault.PointerOutOfRange);
        e.Offset.ShouldBe(pointer);
        e.Message.ShouldContain("0x40");
    }

    [Fact]
    public void A_first_pointer_into_the_header_is_out_of_range()
    {
        var image = new ConfigImage(PciConfigRegister.StandardSize).StandardList(0x10);

        Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device)).Fault.ShouldBe(PciCapabilityListFault.PointerOutOfRange);
    }

    [Fact]
    public void A_standard_pointer_past_a_short_image_is_truncated()
    {
        var image = new ConfigImage(0x80).StandardList(0x40).Standard(0x40, PciCapabilityId.Msi, 0x90);

        Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device)).Fault.ShouldBe(PciCapabilityListFault.Truncated);
    }

    [Fact]
    public void An_image_shorter_than_the_header_is_an_argument_error()
        => Should.Throw<ArgumentException>(() => PciCapabilityWalker.Walk(new byte[0x20], Device)).Message.ShouldContain(Device);

    [Theory]
    [InlineData(0u)]
    [InlineData(0xFFFFFFFFu)]
    public void An_empty_or_absent_extended_space_has_no_extended_capabilities(uint header)
    {
        var image = new ConfigImage().ExtendedHeader(0x100, header);

        PciCapabilityWalker.Walk(image.Bytes, Device).ShouldBeEmpty();
    }

    [Fact]
    public void A_256_byte_space_has_no_extended_list()
        => PciCapabilityWalker.Walk(new ConfigImage(PciConfigRegister.StandardSize).Bytes, Device).ShouldBeEmpty();

    [Fact]
    public void Extended_list_gives_id_version_offset_and_size_after_the_standard_list()
    {
        var image = new ConfigImage().StandardList(0x40).Standard(0x40, PciCapabilityId.PciExpress, 0)
            .Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x148)
            .Extended(0x148, PciExtendedCapabilityId.DeviceSerialNumber, 1, 0x140)
            .Extended(0x140, PciExtendedCapabilityId.AlternativeRoutingId, 1, 0);

        PciCapability[] caps = PciCapabilityWalker.Walk(image.Bytes, Device);

        caps.ShouldBe([
            new PciCapability((byte)PciCapabilityId.PciExpress, 0x40, 0xC0, false, 0),
            new PciCapability((ushort)PciExtendedCapabilityId.AdvancedErrorReporting, 0x100, 0x40, true, 2),
            new PciCapability((ushort)PciExtendedCapabilityId.DeviceSerialNumber, 0x148, 0x1000 - 0x148, true, 1),
            new PciCapability((ushort)PciExtendedCapabilityId.AlternativeRoutingId, 0x140, 8, true, 1),
        ]);
        caps[1].Is(PciExtendedCapabilityId.AdvancedErrorReporting).ShouldBeTrue();
        caps[1].Is(PciCapabilityId.PowerManagement).ShouldBeFalse();
        caps[1].ToString().ShouldBe("AdvancedErrorReporting v2 at 0x100 (64 bytes)");
    }

    [Fact]
    public void An_extended_loop_is_a_typed_error()
    {
        var image = new ConfigImage()
            .Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x200)
            .Extended(0x200, PciExtendedCapabilityId.AccessControlServices, 1, 0x100);

        var e = Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device));

        e.Fault.ShouldBe(PciCapabilityListFault.Loop);
        e.IsExtended.ShouldBeTrue();
        e.Offset.ShouldBe(0x100);
    }

    [Fact]
    public void An_extended_pointer_into_the_standard_space_is_out_of_range()
    {
        var image = new ConfigImage().Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x80);

        var e = Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device));

        e.Fault.ShouldBe(PciCapabilityListFault.PointerOutOfRange);
        e.IsExtended.ShouldBeTrue();
        e.Offset.ShouldBe(0x80);
    }

    [Fact]
    public void An_extended_list_past_the_exposed_space_is_truncated()
    {
        var image = new ConfigImage(0x200).Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x300);

        var e = Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device));

        e.Fault.ShouldBe(PciCapabilityListFault.Truncated);
        e.Offset.ShouldBe(0x300);
        e.Message.ShouldContain("512 bytes");
    }

    [Fact]
    public void An_extended_list_running_into_all_ones_is_truncated()
    {
        var image = new ConfigImage()
            .Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x180)
            .ExtendedHeader(0x180, 0xFFFFFFFF);

        Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(image.Bytes, Device)).Fault.ShouldBe(PciCapabilityListFault.Truncated);
    }

    [Fact]
    public void A_space_cut_inside_the_first_extended_header_is_truncated()
        => Should.Throw<PciCapabilityListException>(() => PciCapabilityWalker.Walk(new byte[0x102], Device)).Fault.ShouldBe(PciCapabilityListFault.Truncated);

    [Fact]
    public void A_zero_header_inside_the_extended_list_ends_it()
    {
        var image = new ConfigImage().Extended(0x100, PciExtendedCapabilityId.AdvancedErrorReporting, 2, 0x180);

        PciCapabilityWalker.Walk(image.Bytes, Device).Select(c => c.Offset).ShouldBe([0x100]);
    }

    [Fact]
    public void The_longest_possible_lists_are_walked_without_a_false_loop()
    {
        var image = new ConfigImage().StandardList(0x40);
        for (int offset = 0x40; offset <= 0xFC; offset += 4)
        {
            image.Standard(offset, PciCapabilityId.VendorSpecific, offset == 0xFC ? 0 : offset + 4);
        }
        for (int offset = 0x100; offset <= 0xFFC; offset += 4)
        {
            image.Extended(offset, PciExtendedCapabilityId.VendorSpecific, 1, offset == 0xFFC ? 0 : offset + 4);
        }

        PciCapability[] caps = PciCapabilityWalker.Walk(image.Bytes, Device);

        caps.Length.ShouldBe(48 + 960);
        caps.ShouldAllBe(c => c.Size == 4);
    }
}
