// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Core.Tests;

/// <summary>Device names as a user writes them, from configuration or a command line.</summary>
public sealed class VfioDeviceSourceTests
{
    // Regression: "0000:00:02.0\n" (a name read from a file) passed as a PCI address, because a regex's $ also matches
    // before a trailing newline, and the later error printed a path that looked exactly like the real device's.
    [Theory]
    [InlineData("0000:00:02.0\n", "\\x0a")]
    [InlineData("00:02.0\r\n", "\\x0d\\x0a")]
    [InlineData("0000:00:02.0\0", "\\x00")]
    [InlineData("LNRO0005:02\t", "\\x09")]
    [InlineData("/sys/bus/pci/devices/0000:00:02.0\n", "\\x0a")]
    [InlineData("fff51000.eth\u007fernet", "\\x7f")]
    public void ANameWithAControlCharacter_IsRefused_ShowingTheCharacter(string text, string shown)
    {
        ArgumentException e = Should.Throw<ArgumentException>(() => VfioDeviceSource.Parse(text));
        e.Message.ShouldContain("control character");
        e.Message.ShouldContain(shown);
        e.Message.ShouldContain("trim it");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void AnEmptyName_SaysWhatToWrite_NotOnlyTheParameter(string text)
    {
        foreach (Func<VfioDeviceSource> parse in new Func<VfioDeviceSource>[]
                 { () => VfioDeviceSource.Parse(text), () => VfioDeviceSource.Pci(text), () => VfioDeviceSource.Platform(text), () => VfioDeviceSource.FromSysfsPath(text) })
        {
            ArgumentException e = Should.Throw<ArgumentException>(parse);
            e.Message.ShouldContain("No device was named");
            e.Message.ShouldContain("0000:00:02.0");
        }
    }

    [Fact]
    public void Null_IsArgumentNull()
        => Should.Throw<ArgumentNullException>(() => VfioDeviceSource.Parse(null!));

    [Theory]
    [InlineData("0000:00:02.0", "0000:00:02.0", VfioBus.Pci)]
    [InlineData("00:1F.7", "0000:00:1f.7", VfioBus.Pci)]
    [InlineData("LNRO0005:02", "LNRO0005:02", VfioBus.Platform)]
    [InlineData("/sys/bus/platform/devices/a000000.virtio_mmio/", "a000000.virtio_mmio", VfioBus.Platform)]
    public void GoodNames_StillParse(string text, string name, VfioBus bus)
    {
        VfioDeviceSource source = VfioDeviceSource.Parse(text);
        source.Name.ShouldBe(name);
        source.Bus.ShouldBe(bus);
    }
}
