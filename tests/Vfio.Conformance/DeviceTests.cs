// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>The MSI-X device at 00:03.0 (QEMU's nvme on the real kernel, the simulator's NvmeDevice) and the
/// virtio-mmio rng on vfio-platform.</summary>
public sealed class DeviceTests
{
    private const int Msix = 2;

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Nvme_Bar0ThroughMmapAndPreadAgree(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice nvme = rig.Attach(Target.Nvme);
        VfioDevice device = nvme.Device;
        device.Info.IsPci.ShouldBeTrue();
        VfioRegionInfo region = device.GetRegion(0);
        region.Flags.HasFlag(VfioRegionFlags.Mmap).ShouldBeTrue();
        using VfioRegionMapping bar0 = device.MapRegion(0);
        bar0.IsMapped(0, 0x10).ShouldBeTrue();

        // 32-bit accesses (the simulator's stand-in takes no others); nvme's CAP low word is neither 0 nor all ones.
        uint mapped = bar0.Read32(0);
        mapped.ShouldNotBe(0u);
        mapped.ShouldNotBe(uint.MaxValue);
        for (ulong offset = 0; offset < 0x10; offset += 4)
        {
            device.ReadRegion32(0, offset).ShouldBe(bar0.Read32(offset), $"BAR0 + 0x{offset:x}");
        }
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Nvme_HasMsixVectors_AndOneFires(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice nvme = rig.Attach(Target.Nvme);
        VfioIrqInfo msix = nvme.Device.GetIrq(Msix);
        msix.Count.ShouldBeGreaterThan(0);
        msix.Flags.HasFlag(VfioIrqFlags.EventFd).ShouldBeTrue();

        // Vector 0 through the loopback trigger (the device itself is not driven here).
        using var vector = new InterruptEvent();
        nvme.Device.SetIrqEventFds(Msix, 0, [vector]);
        nvme.Device.TriggerIrq(Msix);
        vector.TryWait(Rig.Timeout, out ulong count).ShouldBeTrue();
        count.ShouldBe(1UL);
        nvme.Device.DisableIrq(Msix);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_RegionReadsVirtioMagicVersionAndDeviceId(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        rig.Backend.CanAttach(VfioDeviceSource.Platform(Target.Rng), out string reason).ShouldBeTrue(reason);
        AttachedDevice rng = rig.Attach(Target.Rng);
        rng.Container.ShouldBeOfType<Vfio.Backends.Legacy.LegacyContainer>().IsNoIommu.ShouldBeTrue();
        VfioDevice device = rng.Device;
        device.Info.IsPlatform.ShouldBeTrue();
        device.Info.RegionCount.ShouldBe(1);
        device.Info.IrqCount.ShouldBe(1);

        VfioRegionInfo region = device.GetRegion(0);
        region.Size.ShouldBe(0x200UL);
        region.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write);   // not mmap-able
        Should.Throw<InvalidOperationException>(() => device.MapRegion(0));

        device.ReadRegion32(0, 0x00).ShouldBe(0x74726976u);   // "virt"
        device.ReadRegion32(0, 0x04).ShouldBe(2u);            // virtio-mmio version 2 (modern)
        device.ReadRegion32(0, 0x08).ShouldBe(4u);            // entropy device
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_IrqIsAutomasked_UntilUnmasked(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice rng = rig.Attach(Target.Rng);
        VfioDevice device = rng.Device;
        // Touch the region before the device is closed: 6.12's vfio-platform maps a region on first access and
        // iounmap()s every region on close, and x86's iounmap(NULL) is a kernel WARNING (seen in the testbed).
        device.ReadRegion32(0, 0x00).ShouldBe(0x74726976u);
        device.GetIrq(0).Flags.ShouldBe(VfioIrqFlags.EventFd | VfioIrqFlags.Maskable | VfioIrqFlags.Automasked);
        device.GetIrq(0).Count.ShouldBe(1);

        using var irq = new InterruptEvent();
        device.SetIrqEventFds(0, 0, [irq]);
        device.TriggerIrq(0);   // through the automasking handler: signals and masks
        irq.TryWait(Rig.Timeout, out ulong first).ShouldBeTrue();
        first.ShouldBe(1UL);
        device.TriggerIrq(0);
        irq.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse("automasked until UNMASK");
        device.UnmaskIrq(0);
        device.TriggerIrq(0);
        irq.TryWait(Rig.Timeout, out ulong second).ShouldBeTrue("after UNMASK");
        second.ShouldBe(1UL);
        device.UnmaskIrq(0);
        device.DisableIrq(0);
    }
}
