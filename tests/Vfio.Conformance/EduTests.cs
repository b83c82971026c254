// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>The edu round trips the cases share.</summary>
internal static class Edu
{
    /// <summary>Copies 1 KiB from page <paramref name="page"/> of <paramref name="buffer"/> (mapped at
    /// <paramref name="iova"/>) into edu and back out to the next page, and checks the bytes arrived.</summary>
    internal static void RoundTrip(AttachedDevice device, DmaBuffer buffer, ulong iova, int page, int seed)
    {
        using var edu = new EduDriver(device, useMmap: true);
        edu.EnableBusMaster();
        byte[] pattern = Patterns.Make(1024, seed);
        pattern.CopyTo(buffer.Page(page));
        buffer.Page(page + 1)[..1024].Clear();
        ulong source = iova + ((ulong)page * 4096);
        edu.DmaToDevice(source, 0, 1024, Rig.Timeout);
        edu.DmaFromDevice(0, source + 4096, 1024, Rig.Timeout);
        buffer.Page(page + 1)[..1024].ToArray().ShouldBe(pattern);
    }
}

/// <summary>edu's registers through a mapping of BAR0 and through pread/pwrite.</summary>
public sealed class EduTests
{
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModesTwice), MemberType = typeof(Target))]
    public void Edu_IdentificationLivenessAndFactorial(Mode mode, bool mmap)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        using var edu = new EduDriver(attached, mmap);

        edu.ReadIdentification().ShouldBe(EduDriver.Identification);
        edu.CheckLiveness(0x12345678).ShouldBe(~0x12345678u);
        edu.CheckLiveness(0).ShouldBe(uint.MaxValue);
        edu.Factorial(5, Rig.Timeout).ShouldBe(120u);
        edu.Factorial(12, Rig.Timeout).ShouldBe(479001600u);
        edu.Factorial(13, Rig.Timeout).ShouldBe(unchecked((uint)6227020800));   // 32-bit, wraps
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Edu_MmapAndPreadSeeTheSameRegisters(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        VfioDevice device = attached.Device;
        using VfioRegionMapping bar0 = device.MapRegion(0);
        bar0.Areas.ShouldHaveSingleItem().Size.ShouldBe(1UL << 20);

        bar0.Write32(0x04, 0xA5A5_0F0F);
        device.ReadRegion32(0, 0x04).ShouldBe(~0xA5A5_0F0Fu);
        device.WriteRegion32(0, 0x04, 0x0000_FFFF);
        bar0.Read32(0x04).ShouldBe(0xFFFF_0000u);
        device.ReadRegion32(7, 0).ShouldBe(0x11e81234u);   // config space: vendor 1234, device 11e8
    }
}
