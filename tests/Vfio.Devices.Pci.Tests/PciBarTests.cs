// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Devices.Pci.Tests;

public sealed class PciBarTests
{
    private const ulong Page = 4096;

    [Theory]
    [InlineData(0xfe000000u, 0x1000ul, PciBarKind.Memory, false, false)]
    [InlineData(0xfe000008u, 0x1000ul, PciBarKind.Memory, false, true)]
    [InlineData(0x00000004u, 0x4000ul, PciBarKind.Memory, true, false)]
    [InlineData(0x0000000cu, 0x200000ul, PciBarKind.Memory, true, true)]
    [InlineData(0x0000c001u, 0x100ul, PciBarKind.Io, false, false)]
    [InlineData(0x00000000u, 0ul, PciBarKind.Unimplemented, false, false)]
    [InlineData(0x00000001u, 0ul, PciBarKind.Unimplemented, false, false)]
    public void Type_bits_come_from_config_and_presence_from_the_region_size(uint register, ulong size, PciBarKind kind, bool is64, bool prefetchable)
    {
        (PciBarKind k, bool b64, bool pf) = PciBar.Decode(register, size, previousIs64Bit: false);

        k.ShouldBe(kind);
        b64.ShouldBe(is64);
        pf.ShouldBe(prefetchable);
    }

    [Fact]
    public void The_register_after_a_64_bit_bar_is_its_upper_half_whatever_it_holds()
        => PciBar.Decode(0xffffffff, 0, previousIs64Bit: true).Kind.ShouldBe(PciBarKind.UpperHalf);

    [Fact]
    public void The_msix_table_and_pba_pages_are_left_out_of_one_bar()
    {
        // MsixTestDevice's layout: 65 vectors, table at 0x2000 (1040 bytes), PBA at 0x3000 (16 bytes), BAR of 16 KiB.
        var msix = new PciMsixLayout(0x40, 65, 0, 0x2000, 0, 0x3000);

        PciBarLayout.AroundMsix(0, 0x4000, msix, Page).ShouldBe([new VfioSparseMmapArea(0, 0x2000)]);
    }

    [Fact]
    public void A_table_in_the_middle_splits_the_bar_in_two()
    {
        var msix = new PciMsixLayout(0x40, 8, 2, 0x1800, 3, 0);

        PciBarLayout.AroundMsix(2, 0x10000, msix, Page).ShouldBe([new VfioSparseMmapArea(0, 0x1000), new VfioSparseMmapArea(0x2000, 0xE000)]);
    }

    [Fact]
    public void Table_and_pba_on_one_page_make_one_hole()
    {
        var msix = new PciMsixLayout(0x40, 4, 0, 0x3000, 0, 0x3800);

        PciBarLayout.AroundMsix(0, 0x8000, msix, Page).ShouldBe([new VfioSparseMmapArea(0, 0x3000), new VfioSparseMmapArea(0x4000, 0x4000)]);
    }

    [Fact]
    public void A_table_crossing_a_page_boundary_takes_both_pages()
    {
        var msix = new PciMsixLayout(0x40, 256, 0, 0x0F00, 4, 0);

        PciBarLayout.AroundMsix(0, 0x4000, msix, Page).ShouldBe([new VfioSparseMmapArea(0x2000, 0x2000)]);
    }

    [Fact]
    public void A_bar_that_is_all_msix_has_nothing_left_to_map()
        => PciBarLayout.AroundMsix(0, 0x1000, new PciMsixLayout(0x40, 1, 0, 0, 0, 0x800), Page).ShouldBeEmpty();

    [Fact]
    public void Msix_layout_decodes_the_bir_and_masks_it_out_of_the_offset()
    {
        PciMsixLayout layout = PciMsixLayout.Decode(0x40, 0x8040, 0x2000 | 4, 0x3000 | 4, "dev");

        layout.ShouldBe(new PciMsixLayout(0x40, 65, 4, 0x2000, 4, 0x3000));
        layout.TableSize.ShouldBe(65UL * 16);
        layout.PbaSize.ShouldBe(16UL);
    }

    [Fact]
    public void A_reserved_bir_is_a_typed_error_naming_the_device()
    {
        var e = Should.Throw<VfioException>(() => PciMsixLayout.Decode(0x40, 0, 6, 0, "0000:00:03.0"));

        e.Message.ShouldContain("0000:00:03.0");
        e.Message.ShouldContain("BAR 6");
    }
}
