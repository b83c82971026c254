// SPDX-License-Identifier: MIT
using System.Globalization;
using Shouldly;

namespace Vfio.Core.Tests;

// Pure computation that never reaches the kernel, and minutes of it under TCG: the real-kernel tier leaves it to the
// host tier (test.sh runs the guest with -trait- Tier=host).
[Trait("Tier", "host")]
public sealed class IovaAllocatorTests(ITestOutputHelper output)
{
    private const ulong Page = 0x1000;
    private const ulong EduDmaMask = 0x0fff_ffff;

    // What VT-d reports for a 39-bit address width, the MSI window already cut out.
    private static readonly IovaRange[] s_vtdRanges = [new(0x0, 0xfedf_ffff), new(0xfef0_0000, 0x7f_ffff_ffff)];

    [Fact]
    public void Constructor_OneRangeWithMsiWindowReserved_MatchesWhatVtdReports()
    {
        var iovas = new IovaAllocator([new IovaRange(0, 0x7f_ffff_ffff)], [IovaAllocator.X86MsiWindow]);

        iovas.UsableRanges.ShouldBe(s_vtdRanges);
        iovas.ReservedRanges.ShouldBe([new IovaRange(0xfee0_0000, 0xfeef_ffff)]);
        iovas.FreeBytes.ShouldBe((UInt128)0x80_0000_0000 - 0x10_0000);
        iovas.LargestFreeBlock.ShouldBe((UInt128)0x7f_ffff_ffff - 0xfef0_0000 + 1);
        iovas.Count.ShouldBe(0);
        iovas.AllocatedBytes.ShouldBe(UInt128.Zero);
    }

    [Fact]
    public void Constructor_UnsortedOverlappingAndUnalignedRanges_MergesSubtractsAndTrimsInward()
    {
        var iovas = new IovaAllocator(
            [new IovaRange(0x8000, 0xffff), new IovaRange(0x123, 0x4fff), new IovaRange(0x4000, 0x8fff), new IovaRange(0x2_0000, 0x2_1234)],
            [new IovaRange(0xa800, 0xa8ff), new IovaRange(0xe000, 0xefff)]);

        iovas.UsableRanges.ShouldBe([
            new IovaRange(0x1000, 0x9fff),     // 0x123 trimmed up; [0x123-0x4fff], [0x4000-0x8fff], [0x8000-...] merged
            new IovaRange(0xb000, 0xdfff),     // the page holding [0xa800-0xa8ff] is lost whole
            new IovaRange(0xf000, 0xffff),
            new IovaRange(0x2_0000, 0x2_0fff), // 0x2_1234 trimmed down
        ]);
    }

    [Fact]
    public void Constructor_InvalidArguments_Throw()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new IovaAllocator(s_vtdRanges, granule: 0)).ParamName.ShouldBe("granule");
        Should.Throw<ArgumentOutOfRangeException>(() => new IovaAllocator(s_vtdRanges, granule: 0x3000)).ParamName.ShouldBe("granule");
        Should.Throw<ArgumentException>(() => new IovaAllocator([])).ParamName.ShouldBe("usableRanges");
        Should.Throw<ArgumentNullException>(() => new IovaAllocator(null!));
    }

    [Fact]
    public void Constructor_EverythingReserved_HandsOutNothing()
    {
        var iovas = new IovaAllocator([new IovaRange(0x1000, 0x1fff)], [new IovaRange(0, ulong.MaxValue)]);

        iovas.UsableRanges.ShouldBeEmpty();
        iovas.TryAllocate(1, out _).ShouldBeFalse();
        iovas.LargestFreeBlock.ShouldBe(UInt128.Zero);
        Should.Throw<VfioException>(() => iovas.Allocate(1)).Message.ShouldContain("largest free block is none");
    }

    [Fact]
    public void Allocate_AroundTheMsiWindow_NeverHandsOutTheWindow()
    {
        var iovas = new IovaAllocator([new IovaRange(0xfed0_0000, 0xff0f_ffff)], [IovaAllocator.X86MsiWindow]);
        var window = new IovaRange(0xfee0_0000, 0xfeef_ffff);

        int pages = 0;
        while (iovas.TryAllocate(Page, out ulong iova))
        {
            IovaRange.FromStartSize(iova, Page).Overlaps(window).ShouldBeFalse();
            pages++;
        }

        pages.ShouldBe(0x300);  // 1 MiB below the window, 2 MiB above it
        iovas.FreeBytes.ShouldBe(UInt128.Zero);
        iovas.TryFind(0xfee0_0000, out _).ShouldBeFalse();
        iovas.TryFind(0xfedf_ffff, out IovaRange below).ShouldBeTrue();
        below.ShouldBe(new IovaRange(0xfedf_f000, 0xfedf_ffff));
        iovas.TryFind(0xfef0_0000, out IovaRange above).ShouldBeTrue();
        above.Start.ShouldBe(0xfef0_0000UL);
    }

    [Fact]
    public void Allocate_LargeBlockAcrossTheMsiWindow_SkipsToAboveIt()
    {
        var iovas = new IovaAllocator([new IovaRange(0xfe00_0000, 0xffff_ffff)], [IovaAllocator.X86MsiWindow]);

        // 0xfe000000-0xfedfffff is 14 MiB: a 16 MiB block cannot span the window.
        iovas.Allocate(16 << 20).ShouldBe(0xfef0_0000UL);
        iovas.Allocate(14 << 20).ShouldBe(0xfe00_0000UL);
    }

    [Fact]
    public void Allocate_EduDmaMask_StaysBelow256MiB()
    {
        var iovas = new IovaAllocator(s_vtdRanges, [IovaAllocator.X86MsiWindow]);
        iovas.Allocate(0x0ff0_0000).ShouldBe(0UL);

        // The remaining 1 MiB below the mask is the only fit.
        iovas.Allocate(0x10_0000, dmaMask: EduDmaMask).ShouldBe(0x0ff0_0000UL);
        iovas.TryAllocate(Page, 0, EduDmaMask, out _).ShouldBeFalse();
        var error = Should.Throw<VfioException>(() => iovas.Allocate(Page, dmaMask: EduDmaMask));
        output.WriteLine(error.Message);
        error.Operation.ShouldBe("allocate IOVA");
        error.Errno.ShouldBe(Errno.None);
        error.Message.ShouldContain("0x1000 bytes");
        error.Message.ShouldContain("DMA mask 0xfffffff");
        error.Message.ShouldContain("largest free block below the mask is none");
        error.Message.ShouldContain("the largest anywhere 0x7f01100000 bytes (508.02 GiB); 2 allocations live");
        error.Hint.ShouldNotBeNull().ShouldContain("DMA mask");

        // Without the mask the space above 256 MiB is fine.
        iovas.Allocate(Page).ShouldBe(0x1000_0000UL);
    }

    [Fact]
    public void Allocate_BlockStraddlingTheMask_UsesOnlyThePartBelowIt()
    {
        var iovas = new IovaAllocator([new IovaRange(0x0fff_0000, 0x1fff_ffff)]);

        // The free block [0x0fff0000-0x1fffffff] straddles the 28-bit mask: 64 KiB of it lies below.
        iovas.TryAllocate(0x2_0000, 0, EduDmaMask, out _).ShouldBeFalse();
        iovas.Allocate(0x1_0000, dmaMask: EduDmaMask).ShouldBe(0x0fff_0000UL);
        Should.Throw<VfioException>(() => iovas.Allocate(Page, dmaMask: EduDmaMask)).Message.ShouldContain("below the mask is none");

        // A mask that is not of the form 2^n - 1 bounds the last byte all the same.
        var odd = new IovaAllocator([new IovaRange(0, 0xffff)]);
        odd.TryAllocate(0x5000, 0, 0x4fff, out ulong fits).ShouldBeTrue();
        fits.ShouldBe(0UL);
        odd.TryAllocate(Page, 0, 0x5800, out _).ShouldBeFalse();
        Should.Throw<VfioException>(() => odd.Allocate(Page, dmaMask: 0x5800)).Message.ShouldContain("below the mask is 0x801 bytes");
    }

    [Fact]
    public void Allocate_Alignment_ReturnsTheLowestAlignedFit()
    {
        var iovas = new IovaAllocator([new IovaRange(0x1000, 0xf_ffff)]);

        iovas.Allocate(Page, alignment: 0x1_0000).ShouldBe(0x1_0000UL);
        iovas.Allocate(Page).ShouldBe(0x1000UL);
        iovas.Allocate(0x3000, alignment: 0x4000).ShouldBe(0x4000UL);
        iovas.Allocate(Page, alignment: 0x2000).ShouldBe(0x2000UL);
        iovas.Allocate(Page, alignment: 0x8_0000).ShouldBe(0x8_0000UL);
        // An alignment below the granule is met by the granule.
        iovas.Allocate(Page, alignment: 0x10).ShouldBe(0x3000UL);
        iovas.Validate();
    }

    [Fact]
    public void Allocate_AlignedFitOnlyInAShortBlockAboveTheFirstFit_TakesTheGuaranteedFit()
    {
        // Free: [0x1000-0x2fff] (no 0x2000-aligned fit), [0x4000-0x5fff] (an exact aligned fit), [0x8000-0xffff].
        var iovas = new IovaAllocator([new IovaRange(0x1000, 0x2fff), new IovaRange(0x4000, 0x5fff), new IovaRange(0x8000, 0xffff)]);

        // Documented policy, to stay O(log n): the first block of at least the size (0x1000, no aligned fit), then
        // the first block of at least size + alignment - granule (0x8000); the aligned fit at 0x4000 is passed over.
        iovas.Allocate(0x2000, alignment: 0x2000).ShouldBe(0x8000UL);
        // Once it is the first block long enough, it is found.
        iovas.Claim(0x1000, 0x2000);
        iovas.Allocate(0x2000, alignment: 0x2000).ShouldBe(0x4000UL);
    }

    [Fact]
    public void Allocate_SizeNotAMultipleOfTheGranule_RoundsUp()
    {
        var iovas = new IovaAllocator([new IovaRange(0, 0xf_ffff)]);

        ulong first = iovas.Allocate(1);
        ulong second = iovas.Allocate(0x1001);
        ulong third = iovas.Allocate(Page);

        first.ShouldBe(0UL);
        second.ShouldBe(0x1000UL);
        third.ShouldBe(0x3000UL);
        iovas.AllocatedBytes.ShouldBe((UInt128)0x4000);
        iovas.Free(second).ShouldBe(new IovaRange(0x1000, 0x2fff));
    }

    [Fact]
    public void Allocate_SmallerGranule_UsesIt()
    {
        var iovas = new IovaAllocator([new IovaRange(0x100, 0x1ff)], granule: 0x10);

        iovas.Allocate(1).ShouldBe(0x100UL);
        iovas.Allocate(0x11).ShouldBe(0x110UL);
        iovas.Allocate(0x10, alignment: 0x40).ShouldBe(0x140UL);
        iovas.Granule.ShouldBe(0x10UL);
    }

    [Fact]
    public void Allocate_InvalidArguments_Throw()
    {
        var iovas = new IovaAllocator(s_vtdRanges);

        Should.Throw<ArgumentOutOfRangeException>(() => iovas.Allocate(0)).ParamName.ShouldBe("size");
        Should.Throw<ArgumentException>(() => iovas.Allocate(Page, alignment: 0x3000)).ParamName.ShouldBe("alignment");
        Should.Throw<ArgumentException>(() => iovas.TryAllocate(Page, 0x1001, ulong.MaxValue, out _)).ParamName.ShouldBe("alignment");
        iovas.Count.ShouldBe(0);
    }

    [Fact]
    public void Free_Neighbours_CoalesceIntoOneBlock()
    {
        var iovas = new IovaAllocator([new IovaRange(0x10_0000, 0x1f_ffff)]);
        ulong a = iovas.Allocate(Page);
        ulong b = iovas.Allocate(2 * Page);
        ulong c = iovas.Allocate(Page);
        ulong d = iovas.Allocate(Page);

        iovas.Free(b);
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(0x10_1000, 0x10_2fff), new IovaRange(0x10_5000, 0x1f_ffff)]);
        iovas.Free(a);  // joins the block above
        iovas.EnumerateFreeBlocks().First().ShouldBe(new IovaRange(0x10_0000, 0x10_2fff));
        iovas.Free(d);  // joins the block above
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(0x10_0000, 0x10_2fff), new IovaRange(0x10_4000, 0x1f_ffff)]);
        iovas.Free(c);  // joins both
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(0x10_0000, 0x1f_ffff)]);
        iovas.LargestFreeBlock.ShouldBe((UInt128)0x10_0000);
        iovas.FreeBytes.ShouldBe((UInt128)0x10_0000);
        iovas.Count.ShouldBe(0);
        iovas.Validate();
    }

    [Fact]
    public void Free_AcrossAdjacentReportedRanges_CoalescesBecauseTheyWereMerged()
    {
        var iovas = new IovaAllocator([new IovaRange(0, 0xffff), new IovaRange(0x1_0000, 0x1_ffff)]);

        iovas.UsableRanges.ShouldBe([new IovaRange(0, 0x1_ffff)]);
        iovas.Claim(0xf000, 0x2000);
        iovas.Free(0xf000);
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(0, 0x1_ffff)]);
    }

    [Fact]
    public void Free_NotAnAllocationStart_ThrowsArgumentExceptionNamingTheIova()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        ulong iova = iovas.Allocate(4 * Page);

        Should.Throw<ArgumentException>(() => iovas.Free(0x5000)).Message.ShouldStartWith("No IOVA allocation starts at 0x5000.");
        var inside = Should.Throw<ArgumentException>(() => iovas.Free(iova + Page));
        inside.ParamName.ShouldBe("iova");
        inside.Message.ShouldContain("inside the allocation [0x0-0x3fff]");
        iovas.TryFree(iova + Page, out _).ShouldBeFalse();
        iovas.TryFree(iova, out IovaRange freed).ShouldBeTrue();
        freed.ShouldBe(new IovaRange(0, 0x3fff));
        Should.Throw<ArgumentException>(() => iovas.Free(iova));
    }

    [Fact]
    public void Claim_FixedGuestRam_IsHonouredAndSkippedByAllocate()
    {
        var iovas = new IovaAllocator(s_vtdRanges, [IovaAllocator.X86MsiWindow]);

        // Guest RAM below 4 GiB at its guest-physical addresses, as a VMM maps it.
        iovas.Claim(0, 0x8000_0000);
        iovas.Claim(0x1_0000_0000, 0x4000_0000);

        iovas.Allocate(Page).ShouldBe(0x8000_0000UL);
        iovas.Allocate(0x8000_0000).ShouldBe(0x1_4000_0000UL);
        iovas.TryFind(0x7fff_ffff, out IovaRange ram).ShouldBeTrue();
        ram.ShouldBe(new IovaRange(0, 0x7fff_ffff));
        iovas.Count.ShouldBe(4);
        iovas.Validate();
    }

    [Fact]
    public void Claim_OverlappingAnAllocation_ThrowsVfioExceptionNamingIt()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        iovas.Claim(0x10_0000, 0x10_0000);

        var error = Should.Throw<VfioException>(() => iovas.Claim(0xf_0000, 0x2_0000));
        error.Operation.ShouldBe("claim IOVA");
        error.Message.ShouldContain("[0xf0000-0x10ffff] overlaps the allocation [0x100000-0x1fffff]");
        Should.Throw<VfioException>(() => iovas.Claim(0x1f_f000, Page)).Message.ShouldContain("overlaps the allocation [0x100000-0x1fffff]");
        iovas.TryClaim(0x20_0000, Page).ShouldBeTrue();
        iovas.TryClaim(0x1f_0000, 0x2_0000).ShouldBeFalse();
        iovas.Count.ShouldBe(2);
    }

    [Fact]
    public void Claim_InTheMsiWindow_ThrowsVfioExceptionNamingTheReservedRange()
    {
        var iovas = new IovaAllocator([new IovaRange(0, 0x7f_ffff_ffff)], [IovaAllocator.X86MsiWindow]);

        var error = Should.Throw<VfioException>(() => iovas.Claim(0xfed0_0000, 0x20_0000));
        error.Message.ShouldContain("overlaps the reserved range [0xfee00000-0xfeefffff]");
        error.Hint.ShouldNotBeNull().ShouldContain("MSI");
        iovas.TryClaim(0xfee0_0000, Page).ShouldBeFalse();
    }

    [Fact]
    public void Claim_OutsideTheUsableRanges_ThrowsVfioExceptionListingThem()
    {
        var iovas = new IovaAllocator(s_vtdRanges);

        var error = Should.Throw<VfioException>(() => iovas.Claim(0x80_0000_0000, Page));
        error.Message.ShouldContain("[0x8000000000-0x8000000fff] is not inside the usable IOVA ranges ([0x0-0xfedfffff], [0xfef00000-0x7fffffffff])");
        Should.Throw<VfioException>(() => iovas.Claim(0x7f_ffff_f000, 2 * Page)).Message.ShouldContain("not inside the usable");
    }

    [Fact]
    public void Claim_Misaligned_ThrowsArgumentException()
    {
        var iovas = new IovaAllocator(s_vtdRanges);

        Should.Throw<ArgumentException>(() => iovas.Claim(0x1800, Page)).ParamName.ShouldBe("iova");
        Should.Throw<ArgumentException>(() => iovas.TryClaim(0x1000, 0x1800)).ParamName.ShouldBe("size");
        Should.Throw<ArgumentOutOfRangeException>(() => iovas.Claim(0x1000, 0)).ParamName.ShouldBe("size");
        Should.Throw<ArgumentOutOfRangeException>(() => iovas.Claim(ulong.MaxValue - 0xfff, 2 * Page)).ParamName.ShouldBe("size");
        iovas.Count.ShouldBe(0);
    }

    [Fact]
    public void TryFind_Boundaries_FindExactlyTheContainingAllocation()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        iovas.Claim(0x1_0000, 0x4000);
        iovas.Claim(0x1_4000, Page);

        iovas.TryFind(0xffff, out _).ShouldBeFalse();
        iovas.TryFind(0x1_0000, out IovaRange first).ShouldBeTrue();
        first.ShouldBe(new IovaRange(0x1_0000, 0x1_3fff));
        iovas.TryFind(0x1_3fff, out IovaRange last).ShouldBeTrue();
        last.ShouldBe(first);
        iovas.TryFind(0x1_4000, out IovaRange next).ShouldBeTrue();
        next.ShouldBe(new IovaRange(0x1_4000, 0x1_4fff));
        iovas.TryFind(0x1_5000, out IovaRange none).ShouldBeFalse();
        none.ShouldBe(default);
        iovas.TryFind(0, out _).ShouldBeFalse();
        iovas.TryFind(ulong.MaxValue, out _).ShouldBeFalse();
    }

    [Fact]
    public void Allocate_ExhaustASmallSpaceThenFree_ReusesTheSpace()
    {
        var iovas = new IovaAllocator([new IovaRange(0x4_0000, 0x4_ffff)]);
        var iovasTaken = new List<ulong>();
        while (iovas.TryAllocate(Page, out ulong iova))
        {
            iovasTaken.Add(iova);
        }

        iovasTaken.Count.ShouldBe(16);
        iovas.FreeBytes.ShouldBe(UInt128.Zero);
        Should.Throw<VfioException>(() => iovas.Allocate(Page)).Message.ShouldContain("largest free block is none; 16 allocations live");

        iovas.Free(iovasTaken[5]);
        iovas.Free(iovasTaken[6]);
        iovas.Allocate(2 * Page).ShouldBe(iovasTaken[5]);
        iovas.Free(iovasTaken[9]);
        iovas.TryAllocate(2 * Page, out _).ShouldBeFalse();
        iovas.Allocate(Page).ShouldBe(iovasTaken[9]);
        iovas.Validate();
    }

    [Fact]
    public void Allocate_RangeEndingAtTheTopOfTheSpace_DoesNotOverflow()
    {
        var iovas = new IovaAllocator([new IovaRange(0xffff_ffff_ffff_0000, ulong.MaxValue)]);

        iovas.Allocate(0xf000).ShouldBe(0xffff_ffff_ffff_0000UL);
        ulong top = iovas.Allocate(Page, alignment: 0x1000);
        top.ShouldBe(0xffff_ffff_ffff_f000UL);
        iovas.TryAllocate(Page, out _).ShouldBeFalse();
        iovas.TryFind(ulong.MaxValue, out IovaRange last).ShouldBeTrue();
        last.ShouldBe(new IovaRange(0xffff_ffff_ffff_f000, ulong.MaxValue));
        last.Size.ShouldBe((UInt128)Page);
        // Aligning up to 64 KiB from the top block would pass 2^64 - 1.
        iovas.Free(top);
        iovas.TryAllocate(Page, 0x1_0000, ulong.MaxValue, out _).ShouldBeFalse();
        iovas.Free(0xffff_ffff_ffff_0000).ShouldBe(new IovaRange(0xffff_ffff_ffff_0000, 0xffff_ffff_ffff_efff));
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(0xffff_ffff_ffff_0000, ulong.MaxValue)]);
        iovas.Claim(0xffff_ffff_ffff_f000, Page);
        iovas.TryClaim(0xffff_ffff_ffff_e000, 2 * Page).ShouldBeFalse();
        iovas.Validate();
    }

    [Fact]
    public void Allocate_TheWhole64BitSpace_CountsTwoToThe64Bytes()
    {
        var iovas = new IovaAllocator([new IovaRange(0, ulong.MaxValue)]);
        UInt128 all = UInt128.One << 64;

        iovas.FreeBytes.ShouldBe(all);
        iovas.LargestFreeBlock.ShouldBe(all);
        iovas.Allocate(ulong.MaxValue).ShouldBe(0UL);
        iovas.AllocatedBytes.ShouldBe(all);
        iovas.FreeBytes.ShouldBe(UInt128.Zero);
        iovas.TryFind(ulong.MaxValue, out IovaRange whole).ShouldBeTrue();
        whole.Size.ShouldBe(all);
        iovas.Free(0).ShouldBe(new IovaRange(0, ulong.MaxValue));
        iovas.Allocate(Page, alignment: 1UL << 63).ShouldBe(0UL);
        iovas.Allocate(Page, alignment: 1UL << 63).ShouldBe(1UL << 63);
        iovas.TryAllocate(Page, 1UL << 63, ulong.MaxValue, out _).ShouldBeFalse();
        iovas.Validate();
    }

    [Fact]
    public void EnumerateAllocations_ModifiedDuringEnumeration_Throws()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        iovas.Allocate(Page);
        iovas.Allocate(Page);

        iovas.EnumerateAllocations().ShouldBe([new IovaRange(0, 0xfff), new IovaRange(0x1000, 0x1fff)]);
        Should.Throw<InvalidOperationException>(() =>
        {
            foreach (IovaRange allocation in iovas.EnumerateAllocations())
            {
                iovas.Free(allocation.Start);
            }
        });
    }

    [Fact]
    public void Operations_RandomMix_MatchTheReferenceModel()
    {
        const ulong Limit = 0x100_0000;
        IovaRange[] usable = [new(0x1000, 0x7f_ffff), new(0x80_0000, 0xbf_f7ff), new(0xc1_0800, 0xff_ffff)];
        IovaRange[] reserved = [new(0x40_0800, 0x40_17ff), new(0xa0_0000, 0xa3_ffff)];
        ulong[] alignments = [0, 0, 0, 0x800, 0x1000, 0x2000, 0x4000, 0x1_0000, 0x10_0000];
        ulong[] masks = [ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, 0x7f_ffff, 0xff_ffff, 0x5a_5fff, 0x3f_f123, 0x1fff, 0];
        var iovas = new IovaAllocator(usable, reserved);
        var model = new IovaAllocatorModel(usable, reserved, Page, Limit);
        var random = new Random(20240611);
        var counts = new Dictionary<string, int>();

        for (int step = 0; step < 20_000; step++)
        {
            int roll = random.Next(100);
            string op;
            if (roll < 35)
            {
                ulong size = random.Next(20) == 0 ? (ulong)random.Next(1, 512 * (int)Page) : (ulong)random.Next(1, 16 * (int)Page);
                ulong alignment = alignments[random.Next(alignments.Length)];
                ulong mask = masks[random.Next(masks.Length)];
                bool expected = model.TryAllocate(size, alignment, mask, out ulong expectedIova);
                if (!expected && random.Next(4) == 0)
                {
                    Should.Throw<VfioException>(() => iovas.Allocate(size, alignment, mask)).Operation.ShouldBe("allocate IOVA");
                }
                else
                {
                    iovas.TryAllocate(size, alignment, mask, out ulong iova).ShouldBe(expected, $"step {step}: allocate 0x{size:x} align 0x{alignment:x} mask 0x{mask:x}");
                    iova.ShouldBe(expectedIova, $"step {step}");
                }
                op = expected ? "allocate" : "allocate (no fit)";
            }
            else if (roll < 45)
            {
                ulong iova = (ulong)random.Next((int)((Limit + 0x10_0000) / Page)) * Page;
                ulong size = (ulong)random.Next(1, 33) * Page;
                bool expected = model.TryClaim(iova, size);
                if (!expected && random.Next(4) == 0)
                {
                    Should.Throw<VfioException>(() => iovas.Claim(iova, size)).Operation.ShouldBe("claim IOVA");
                }
                else
                {
                    iovas.TryClaim(iova, size).ShouldBe(expected, $"step {step}: claim 0x{size:x} at 0x{iova:x}");
                }
                op = expected ? "claim" : "claim (not free)";
            }
            else if (roll < 80)
            {
                op = FreeAndCompare(iovas, model, random, Limit, step) ? "free" : "free (not allocated)";
            }
            else
            {
                ulong iova = (ulong)random.NextInt64((long)Limit + 0x1000);
                bool expected = model.TryFind(iova, out IovaRange expectedRange);
                iovas.TryFind(iova, out IovaRange found).ShouldBe(expected, $"step {step}: find 0x{iova:x}");
                found.ShouldBe(expectedRange);
                op = expected ? "find" : "find (not allocated)";
            }
            counts[op] = counts.GetValueOrDefault(op) + 1;

            iovas.Count.ShouldBe(model.Count);
            iovas.FreeBytes.ShouldBe(model.FreeBytes);
            if (step % 500 == 0 || step == 19_999)
            {
                iovas.AllocatedBytes.ShouldBe(model.AllocatedBytes);
                iovas.LargestFreeBlock.ShouldBe(model.LargestFreeBlock);
                iovas.EnumerateFreeBlocks().ShouldBe(model.FreeBlocks(), $"step {step}");
                iovas.EnumerateAllocations().ShouldBe(model.Allocations(), $"step {step}");
                iovas.Validate();
            }
        }

        output.WriteLine(string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}: {c.Value}")));
        // The mix must have exercised every path.
        counts.Keys.Count.ShouldBe(8);
        counts.Values.ShouldAllBe(c => c >= 200);
    }

    [Fact]
    public void Operations_TwoToTheFourThroughTwoToTheSixteenLiveRanges_VisitLogarithmicallyManyNodes()
    {
        // Visits per operation (nodes on search paths, nodes re-summarised on the way back up, rotations; both trees)
        // must stay within C·log2(n) + D. The worst operation, an aligned allocation, makes two searches of the free
        // tree, walks back up it, and inserts into the allocation tree (a search and a walk back up): about five
        // paths of AVL trees whose height is log2(n) + 1 here (at most 1.44·log2(n + 2) in theory).
        const double C = 6;
        const double D = 12;
        const int Rounds = 2000;
        var random = new Random(16);
        output.WriteLine("     n | allocate | aligned | edu mask |   free |   find |  claim | max  | bound | max/log2(n)");

        for (int log = 4; log <= 16; log++)
        {
            int n = 1 << log;
            var iovas = new IovaAllocator(s_vtdRanges, [IovaAllocator.X86MsiWindow]);
            iovas.EnsureCapacity(2 * n + 8);
            var live = new List<ulong>(2 * n + 8);
            for (int i = 0; i < 2 * n; i++)
            {
                live.Add(iovas.Allocate(Page));
            }
            // Free every other one: n live allocations and n one-page free blocks between them.
            for (int i = 2 * n - 1; i >= 0; i -= 2)
            {
                iovas.Free(live[i]);
                live.RemoveAt(i);
            }
            iovas.Count.ShouldBe(n);

            long[] max = new long[6];
            void Measure(int kind, long before) => max[kind] = Math.Max(max[kind], iovas.OperationCount - before);
            ulong RemoveRandom()
            {
                int index = random.Next(live.Count);
                ulong iova = live[index];
                live[index] = live[^1];
                live.RemoveAt(live.Count - 1);
                return iova;
            }

            for (int round = 0; round < Rounds; round++)
            {
                long before = iovas.OperationCount;
                live.Add(iovas.Allocate(Page));
                Measure(0, before);

                before = iovas.OperationCount;
                ulong aligned = iovas.Allocate(4 * Page, alignment: 4 * Page);
                Measure(1, before);
                before = iovas.OperationCount;
                iovas.Free(aligned);
                Measure(3, before);

                before = iovas.OperationCount;
                if (iovas.TryAllocate(Page, 0, EduDmaMask, out ulong edu))
                {
                    live.Add(edu);
                }
                Measure(2, before);

                while (live.Count > n)
                {
                    ulong victim = RemoveRandom();
                    before = iovas.OperationCount;
                    iovas.Free(victim);
                    Measure(3, before);
                }

                ulong probe = live[random.Next(live.Count)] + (ulong)random.Next((int)Page);
                before = iovas.OperationCount;
                iovas.TryFind(probe, out _).ShouldBeTrue();
                Measure(4, before);
                before = iovas.OperationCount;
                iovas.TryFind(probe + Page, out _);
                Measure(4, before);

                ulong target = (ulong)random.Next(2 * n + 2) * Page;
                before = iovas.OperationCount;
                bool claimed = iovas.TryClaim(target, Page);
                Measure(5, before);
                if (claimed)
                {
                    live.Add(target);
                    ulong victim = RemoveRandom();
                    before = iovas.OperationCount;
                    iovas.Free(victim);
                    Measure(3, before);
                }
            }
            iovas.Count.ShouldBe(n);
            iovas.Validate();

            long worst = max.Max();
            double bound = C * log + D;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{n,6} | {max[0],8} | {max[1],7} | {max[2],8} | {max[3],6} | {max[4],6} | {max[5],6} | {worst,4} | {bound,5} | {(double)worst / log:0.00}"));
            worst.ShouldBeLessThanOrEqualTo((long)bound, $"n = {n}");
        }
    }

    // Frees a random live allocation (or, one time in five, a random page, mostly not an allocation's start) in both.
    private static bool FreeAndCompare(IovaAllocator iovas, IovaAllocatorModel model, Random random, ulong limit, int step)
    {
        ulong iova = model.Live.Count > 0 && random.Next(5) != 0
            ? model.Live[random.Next(model.Live.Count)]
            : (ulong)random.Next((int)(limit / Page)) * Page;
        bool expected = model.TryFree(iova, out IovaRange expectedRange);
        iovas.TryFree(iova, out IovaRange freed).ShouldBe(expected, $"step {step}: free 0x{iova:x}");
        freed.ShouldBe(expectedRange);
        return expected;
    }

    // Everything freed: the free blocks are the usable ranges again, coalesced, and the invariants hold.
    private static void ShouldBeAllFree(IovaAllocator iovas)
    {
        iovas.EnumerateFreeBlocks().ShouldBe(s_vtdRanges);
        iovas.Validate();
    }

    [Fact]
    public void FreeThenAllocate_SameSize_HandsBackTheHeldBlockWithoutTouchingTheFreeTree()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        ulong below = iovas.Allocate(Page);
        ulong iova = iovas.Allocate(2 * Page);
        iovas.Free(iova);
        iovas.HoldsPendingBlock.ShouldBeTrue();
        iovas.Validate();
        iovas.FreeBytes.ShouldBe((UInt128)0x7f_ffff_ffff + 1 - 0x10_0000 - Page);
        long before = iovas.OperationCount;

        iovas.Allocate(2 * Page).ShouldBe(iova);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        // One insert into the allocation index, no search of the free tree.
        (iovas.OperationCount - before).ShouldBeLessThanOrEqualTo(4);
        iovas.Validate();
        iovas.Free(iova);
        // Another allocation's free coalesces the held block first.
        iovas.Free(below);
        ShouldBeAllFree(iovas);
    }

    [Fact]
    public void HeldBlock_ReadOrOtherOperation_CoalescesItFirst()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        ulong iova = iovas.Allocate(Page);
        iovas.Free(iova);
        iovas.HoldsPendingBlock.ShouldBeTrue();
        // Reads of the free blocks see them coalesced.
        iovas.LargestFreeBlock.ShouldBe((UInt128)0x7f_ffff_ffff + 1 - 0xfef0_0000);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        iovas.EnumerateFreeBlocks().ShouldBe(s_vtdRanges);

        iovas.Allocate(Page).ShouldBe(iova);
        iovas.Free(iova);
        ShouldBeAllFree(iovas);

        // A claim of another range, a free of another allocation: the held block goes back to the tree first.
        iovas.Allocate(Page).ShouldBe(0UL);
        ulong second = iovas.Allocate(Page);
        iovas.Free(second);
        iovas.Claim(0x10_0000, Page);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        iovas.EnumerateFreeBlocks().ShouldBe([new IovaRange(Page, 0xf_ffff), new IovaRange(0x10_1000, 0xfedf_ffff), s_vtdRanges[1]]);
        ulong third = iovas.Allocate(Page);
        third.ShouldBe(Page);
        iovas.Free(0);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        iovas.Free(third);
        iovas.HoldsPendingBlock.ShouldBeTrue();
        iovas.Free(0x10_0000);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        ShouldBeAllFree(iovas);
    }

    [Fact]
    public void HeldBlock_NoLongerTheLowestFit_IsNotHandedBack()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        ulong a = iovas.Allocate(Page);
        ulong b = iovas.Allocate(Page);
        ulong c = iovas.Allocate(Page);
        // c is the held allocation; freeing a (another one) adds free space below it: c is no longer the lowest fit.
        // Freed, c is still held (a claim of it could take it back), but an allocation of its size gets a.
        iovas.Free(a);
        iovas.Free(c);
        iovas.HoldsPendingBlock.ShouldBeTrue();
        iovas.Validate();
        iovas.Allocate(Page).ShouldBe(a);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        iovas.Validate();

        // Freed just below the held block while it is live: a fit of twice the size now starts lower, at b.
        ulong d = iovas.Allocate(Page);
        d.ShouldBe(c);
        iovas.Free(b);
        iovas.Free(d);
        iovas.Allocate(2 * Page).ShouldBe(b);
        iovas.Validate();
    }

    [Fact]
    public void HeldBlock_OtherSizeAlignmentOrMask_TakesTheOrdinaryPath()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        ulong low = iovas.Allocate(Page);
        ulong iova = iovas.Allocate(Page);
        iova.ShouldBe(Page);

        iovas.Free(iova);
        // A larger size: the held block coalesces with the space above it and the fit starts at it.
        iovas.Allocate(3 * Page).ShouldBe(Page);
        iovas.Free(Page);
        // A smaller alignment than the held block's start allows: the lowest aligned fit, not the held block.
        iovas.Allocate(Page, alignment: 2 * Page).ShouldBe(2 * Page);
        iovas.HoldsPendingBlock.ShouldBeFalse();
        iovas.Free(2 * Page);
        iovas.Allocate(Page).ShouldBe(Page);
        iovas.Free(Page);
        // A DMA mask the held block does not fit under: no fit at all.
        iovas.TryAllocate(Page, 0, Page - 1, out _).ShouldBeFalse();
        iovas.Allocate(Page, dmaMask: 2 * Page - 1).ShouldBe(Page);
        iovas.Free(Page);
        iovas.Free(low);
        ShouldBeAllFree(iovas);
    }

    [Fact]
    public void HeldBlock_ExhaustedSpace_IsHandedBackAndNothingElseFits()
    {
        var iovas = new IovaAllocator([new IovaRange(0, 4 * Page - 1)]);
        for (int i = 0; i < 4; i++)
        {
            iovas.Allocate(Page).ShouldBe((ulong)i * Page);
        }
        iovas.Free(3 * Page);
        iovas.FreeBytes.ShouldBe((UInt128)Page);
        iovas.TryAllocate(2 * Page, out _).ShouldBeFalse();
        iovas.Allocate(Page).ShouldBe(3 * Page);
        iovas.TryAllocate(Page, out _).ShouldBeFalse();
        iovas.Free(3 * Page);
        // The failure message reads the coalesced free tree.
        Should.Throw<VfioException>(() => iovas.Allocate(2 * Page)).Message.ShouldContain("the largest free block is 0x1000 bytes");
        iovas.Allocate(Page).ShouldBe(3 * Page);
        iovas.FreeBytes.ShouldBe(UInt128.Zero);
        iovas.Validate();
    }

    [Fact]
    public void HeldBlock_ClaimOfTheSameRange_IsHandedBackOtherClaimsSeeItFree()
    {
        var iovas = new IovaAllocator(s_vtdRanges);
        iovas.Claim(0x10_0000, 2 * Page);
        iovas.Free(0x10_0000);
        iovas.HoldsPendingBlock.ShouldBeTrue();
        long before = iovas.OperationCount;
        iovas.Claim(0x10_0000, 2 * Page);
        (iovas.OperationCount - before).ShouldBeLessThanOrEqualTo(4);
        iovas.Free(0x10_0000);
        // An overlapping claim of another shape: the held block is free space like any other.
        iovas.Claim(0x10_1000, 2 * Page);
        iovas.Free(0x10_1000);
        // A claimed block is never handed out by Allocate through the fast path: the lowest fit is 0.
        iovas.Allocate(2 * Page).ShouldBe(0UL);
        iovas.EnumerateAllocations().ShouldBe([new IovaRange(0, 2 * Page - 1)]);
        iovas.Free(0);
        ShouldBeAllFree(iovas);
    }

    [Fact]
    public void Operations_MapThenUnmapHeavyMix_MatchTheReferenceModel()
    {
        // Mostly allocate-then-free pairs of a few sizes (the fast path), interleaved with the operations that must
        // coalesce the held block first: other frees, claims, aligned and masked allocations, look-ups.
        const ulong Limit = 0x40_0000;
        IovaRange[] usable = [new(0x1000, 0x1f_ffff), new(0x20_0000, 0x3f_efff)];
        IovaRange[] reserved = [new(0x18_0000, 0x18_3fff)];
        ulong[] sizes = [Page, Page, 2 * Page, 3 * Page, 8 * Page];
        var iovas = new IovaAllocator(usable, reserved);
        var model = new IovaAllocatorModel(usable, reserved, Page, Limit);
        var random = new Random(1147);
        int handedBack = 0;

        for (int step = 0; step < 20_000; step++)
        {
            int roll = random.Next(100);
            if (roll < 50)
            {
                ulong size = sizes[random.Next(sizes.Length)];
                ulong alignment = random.Next(10) == 0 ? 4 * Page : 0;
                ulong mask = random.Next(10) == 0 ? (ulong)random.Next(1, (int)(Limit / Page)) * Page - 1 : ulong.MaxValue;
                bool pending = iovas.HoldsPendingBlock;
                bool expected = model.TryAllocate(size, alignment, mask, out ulong expectedIova);
                iovas.TryAllocate(size, alignment, mask, out ulong iova).ShouldBe(expected, $"step {step}");
                iova.ShouldBe(expectedIova, $"step {step}: allocate 0x{size:x} align 0x{alignment:x} mask 0x{mask:x}");
                handedBack += pending && expected ? 1 : 0;
                if (expected && random.Next(4) != 0)
                {
                    // Most allocations are freed right away: map, then unmap.
                    iovas.TryFree(iova, out IovaRange freed).ShouldBeTrue();
                    model.TryFree(iova, out IovaRange expectedRange).ShouldBeTrue();
                    freed.ShouldBe(expectedRange);
                }
            }
            else if (roll < 60)
            {
                ulong iova = (ulong)random.Next((int)(Limit / Page)) * Page;
                ulong size = (ulong)random.Next(1, 5) * Page;
                bool expected = model.TryClaim(iova, size);
                iovas.TryClaim(iova, size).ShouldBe(expected, $"step {step}: claim 0x{size:x} at 0x{iova:x}");
                if (expected && random.Next(2) == 0)
                {
                    iovas.TryFree(iova, out _).ShouldBeTrue();
                    model.TryFree(iova, out _).ShouldBeTrue();
                }
            }
            else if (roll < 85)
            {
                FreeAndCompare(iovas, model, random, Limit, step);
            }
            else
            {
                ulong iova = (ulong)random.NextInt64((long)Limit);
                bool expected = model.TryFind(iova, out IovaRange expectedRange);
                iovas.TryFind(iova, out IovaRange found).ShouldBe(expected, $"step {step}: find 0x{iova:x}");
                found.ShouldBe(expectedRange);
            }

            iovas.Count.ShouldBe(model.Count);
            iovas.FreeBytes.ShouldBe(model.FreeBytes);
            iovas.Validate();
            if (step % 250 == 0)
            {
                iovas.AllocatedBytes.ShouldBe(model.AllocatedBytes);
                iovas.EnumerateAllocations().ShouldBe(model.Allocations(), $"step {step}");
                iovas.EnumerateFreeBlocks().ShouldBe(model.FreeBlocks(), $"step {step}");
                iovas.LargestFreeBlock.ShouldBe(model.LargestFreeBlock);
            }
        }

        output.WriteLine($"allocations served while a freed block was held: {handedBack}");
        handedBack.ShouldBeGreaterThan(2000);
    }

    [Fact]
    public void AllocateFree_SteadyState_AllocatesNothing()
    {
        const int Pairs = 10_000;
        var iovas = new IovaAllocator(s_vtdRanges, [IovaAllocator.X86MsiWindow]);
        iovas.EnsureCapacity(4096);
        var live = new ulong[2048];
        for (int i = 0; i < live.Length; i++)
        {
            live[i] = iovas.Allocate(Page);
            iovas.Allocate(Page);
        }
        for (int i = 0; i < live.Length; i++)
        {
            iovas.Free(live[i]);
        }

        long failures = 0;
        void Run(int pairs)
        {
            for (int i = 0; i < pairs; i++)
            {
                ulong small = iovas.Allocate(Page);
                ulong aligned = iovas.Allocate(3 * Page, alignment: 4 * Page, dmaMask: EduDmaMask);
                if (!iovas.TryFind(small, out _) || !iovas.TryClaim(live[i % live.Length] + 0x1000_0000, Page))
                {
                    failures++;
                }
                iovas.Free(live[i % live.Length] + 0x1000_0000);
                iovas.Free(aligned);
                iovas.Free(small);
            }
        }

        Run(2000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(Pairs);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        failures.ShouldBe(0);
        allocated.ShouldBe(0);
        iovas.Count.ShouldBe(2048);
    }
}
