// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests;

public sealed class IovaRangeTests
{
    [Fact]
    public void Constructor_LastBelowStart_ThrowsArgumentOutOfRange()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new IovaRange(0x2000, 0x1fff)).ParamName.ShouldBe("last");
        new IovaRange(0x2000, 0x2000).Size.ShouldBe(UInt128.One);
        default(IovaRange).Size.ShouldBe(UInt128.One);
    }

    [Fact]
    public void Size_WholeSpace_IsTwoToThe64()
    {
        new IovaRange(0, ulong.MaxValue).Size.ShouldBe(UInt128.One << 64);
        new IovaRange(0xfee0_0000, 0xfeef_ffff).Size.ShouldBe((UInt128)0x10_0000);
    }

    [Theory]
    [InlineData(0x1000UL, 0x1000UL, 0x1fffUL)]
    [InlineData(0UL, 1UL, 0UL)]
    [InlineData(0xffff_ffff_ffff_f000UL, 0x1000UL, ulong.MaxValue)]
    [InlineData(ulong.MaxValue, 1UL, ulong.MaxValue)]
    public void FromStartSize_ValidSizes_GiveInclusiveLast(ulong start, ulong size, ulong last)
    {
        IovaRange.FromStartSize(start, size).ShouldBe(new IovaRange(start, last));
    }

    [Theory]
    [InlineData(0x1000UL, 0UL)]
    [InlineData(0xffff_ffff_ffff_f000UL, 0x1001UL)]
    [InlineData(2UL, ulong.MaxValue)]
    [InlineData(ulong.MaxValue, 2UL)]
    public void FromStartSize_ZeroOrOverflowing_ThrowsArgumentOutOfRange(ulong start, ulong size)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => IovaRange.FromStartSize(start, size)).ParamName.ShouldBe("size");
    }

    [Fact]
    public void ContainsAndOverlaps_Boundaries_AreInclusive()
    {
        var msi = new IovaRange(0xfee0_0000, 0xfeef_ffff);

        msi.Contains(0xfee0_0000).ShouldBeTrue();
        msi.Contains(0xfeef_ffff).ShouldBeTrue();
        msi.Contains(0xfedf_ffff).ShouldBeFalse();
        msi.Contains(0xfef0_0000).ShouldBeFalse();
        msi.Contains(new IovaRange(0xfee0_1000, 0xfee0_1fff)).ShouldBeTrue();
        msi.Contains(new IovaRange(0xfee0_1000, 0xfef0_0000)).ShouldBeFalse();
        msi.Overlaps(new IovaRange(0, 0xfee0_0000)).ShouldBeTrue();
        msi.Overlaps(new IovaRange(0xfeef_ffff, ulong.MaxValue)).ShouldBeTrue();
        msi.Overlaps(new IovaRange(0, 0xfedf_ffff)).ShouldBeFalse();
        msi.Overlaps(new IovaRange(0xfef0_0000, ulong.MaxValue)).ShouldBeFalse();
    }

    [Fact]
    public void ToStringAndDeconstruct_ShowInclusiveHexBounds()
    {
        var range = new IovaRange(0xfee0_0000, 0xfeef_ffff);
        range.ToString().ShouldBe("[0xfee00000-0xfeefffff]");
        (ulong start, ulong last) = range;
        start.ShouldBe(0xfee0_0000UL);
        last.ShouldBe(0xfeef_ffffUL);
        range.ShouldBe(new IovaRange(0xfee0_0000, 0xfeef_ffff));
    }
}
