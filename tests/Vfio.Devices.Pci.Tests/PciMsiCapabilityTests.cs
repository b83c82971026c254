// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Devices.Pci.Tests;

public sealed class PciMsiCapabilityTests
{
    [Theory]
    [InlineData(0x0000, 1, false, false, 10, 0x58, -1)]
    [InlineData(0x0080, 1, true, false, 14, 0x5c, -1)]
    [InlineData(0x0186, 8, true, true, 24, 0x5c, 0x60)]
    [InlineData(0x010a, 32, false, true, 20, 0x58, 0x5c)]
    [InlineData(0x000e, 32, false, false, 10, 0x58, -1)]
    public void Control_word_decodes(ushort control, int maxVectors, bool is64Bit, bool masking, int length, int dataOffset, int maskOffset)
    {
        var msi = new PciMsiCapability(0x50, control);
        msi.MaxVectors.ShouldBe(maxVectors);
        msi.Is64Bit.ShouldBe(is64Bit);
        msi.HasPerVectorMasking.ShouldBe(masking);
        msi.Length.ShouldBe(length);
        msi.DataOffset.ShouldBe(dataOffset);
        msi.MaskOffset.ShouldBe(maskOffset);
        msi.IsEnabled.ShouldBeFalse();
    }

    [Fact]
    public void Enable_and_multiple_message_enable()
    {
        var msi = new PciMsiCapability(0x50, 0x00a7);
        msi.IsEnabled.ShouldBeTrue();
        msi.EnabledVectors.ShouldBe(4);
        msi.ToString().ShouldBe("MSI at 0x50: 8 vector(s), 64-bit, enabled");
    }
}
