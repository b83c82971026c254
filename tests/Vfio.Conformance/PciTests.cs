// SPDX-License-Identifier: MIT
using System.Text;
using Shouldly;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Devices.Pci;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>Devices.Pci's configuration-space view: identity, command bits, the capability lists, bad accesses.</summary>
public sealed class PciConfigTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_HeaderIdentity(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        edu.VendorId.ShouldBe((ushort)0x1234);
        edu.DeviceId.ShouldBe((ushort)0x11e8);
        edu.ClassCode.ShouldBe(0x00ff00u);
        edu.RevisionId.ShouldBe((byte)0x10);
        edu.HeaderType.ShouldBe((byte)0);
        edu.InterruptPin.ShouldBe((byte)1);
        edu.ConfigSize.ShouldBe(PciConfigRegister.StandardSize);   // conventional PCI
        edu.ReadConfig32(PciConfigRegister.VendorId).ShouldBe(0x11e81234u);
        edu.ReadConfig8(PciConfigRegister.InterruptPin).ShouldBe((byte)1);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_CommandBitsSetAndClear(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        edu.SetBusMaster(true);
        edu.SetMemorySpace(true);
        edu.SetIntxDisabled(true);
        PciCommand on = edu.ReadCommand();
        (on & (PciCommand.BusMaster | PciCommand.MemorySpace | PciCommand.InterruptDisable)).ShouldBe(PciCommand.BusMaster | PciCommand.MemorySpace | PciCommand.InterruptDisable);

        edu.SetBusMaster(false);
        edu.SetIntxDisabled(false);
        PciCommand off = edu.ReadCommand();
        (off & (PciCommand.BusMaster | PciCommand.InterruptDisable)).ShouldBe(PciCommand.None);
        (off & PciCommand.MemorySpace).ShouldBe(PciCommand.MemorySpace);
        edu.UpdateCommand(PciCommand.BusMaster, PciCommand.MemorySpace).ShouldBe((off | PciCommand.BusMaster) & ~PciCommand.MemorySpace);
        edu.ReadCommand().ShouldBe((off | PciCommand.BusMaster) & ~PciCommand.MemorySpace);
        (edu.ReadStatus() & PciStatus.CapabilitiesList).ShouldBe(PciStatus.CapabilitiesList);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_CapabilitiesAreJustMsi(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        PciCapability msi = edu.Capabilities.ShouldHaveSingleItem();
        msi.Is(PciCapabilityId.Msi).ShouldBeTrue();
        msi.Offset.ShouldBeGreaterThanOrEqualTo(0x40);
        (msi.Offset + msi.Size).ShouldBe(PciConfigRegister.StandardSize);
        edu.FindCapability(PciCapabilityId.MsiX).ShouldBeNull();
        edu.MsixLayout.ShouldBeNull();
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Nvme_CapabilitiesIncludeMsixAndPciExpress_InBothLists(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));

        nvme.ConfigSize.ShouldBe(PciConfigRegister.ExtendedSize);
        nvme.FindCapability(PciCapabilityId.MsiX).ShouldNotBeNull();
        nvme.FindCapability(PciCapabilityId.PciExpress).ShouldNotBeNull();
        foreach (PciCapability capability in nvme.Capabilities)
        {
            capability.Size.ShouldBeGreaterThan(0, capability.ToString());
            if (capability.IsExtended)
            {
                capability.Offset.ShouldBeGreaterThanOrEqualTo(PciConfigRegister.StandardSize);
                (capability.Offset + capability.Size).ShouldBeLessThanOrEqualTo(nvme.ConfigSize);
            }
            else
            {
                capability.Offset.ShouldBeInRange(0x40, 0xFC);
                nvme.ReadConfig8(capability.Offset).ShouldBe((byte)capability.Id);
            }
        }
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Nvme_MsixLayoutMatchesTheIrqInfo(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));

        PciMsixLayout msix = nvme.MsixLayout.ShouldNotBeNull();
        msix.VectorCount.ShouldBe(nvme.Device.GetIrq(VfioPciIrq.Msix).Count);
        msix.CapabilityOffset.ShouldBe(nvme.FindCapability(PciCapabilityId.MsiX)!.Value.Offset);
        PciBar tableBar = nvme.GetBar(msix.TableBar);
        tableBar.Kind.ShouldBe(PciBarKind.Memory);
        (msix.TableOffset + msix.TableSize).ShouldBeLessThanOrEqualTo(tableBar.Size);
        (msix.PbaOffset + msix.PbaSize).ShouldBeLessThanOrEqualTo(nvme.GetBar(msix.PbaBar).Size);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void PciTestDev_HasNoCapabilities(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var testdev = new VfioPciDevice(rig.Attach(Target.PciTestDev));

        testdev.VendorId.ShouldBe((ushort)0x1b36);
        testdev.DeviceId.ShouldBe((ushort)0x0005);
        testdev.Capabilities.ShouldBeEmpty();
        testdev.InterruptPin.ShouldBe((byte)0);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void BadConfigAccesses_AreRefusedNamingTheDevice(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        Should.Throw<ArgumentOutOfRangeException>(() => edu.ReadConfig32(0x100)).Message.ShouldContain(Target.Edu);
        Should.Throw<ArgumentOutOfRangeException>(() => edu.ReadConfig16(0x03)).Message.ShouldContain("not aligned");
        Should.Throw<ArgumentOutOfRangeException>(() => edu.WriteConfig8(-1, 0)).Message.ShouldContain(Target.Edu);
        Should.Throw<ArgumentException>(() => edu.UpdateCommand(PciCommand.MemorySpace, PciCommand.MemorySpace));
        Should.Throw<ArgumentException>(() => edu.ClearStatus(PciStatus.CapabilitiesList)).Message.ShouldContain("read-only");
        edu.ReadConfig16(PciConfigRegister.VendorId).ShouldBe((ushort)0x1234);   // the device is still usable
    }
}

/// <summary>Devices.Pci's BARs: decoding, mapping with the fast accessors, the refusals.</summary>
public sealed class PciBarMappingTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Nvme_Bar0Is64BitMemory_AndBar1ItsUpperHalf(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));

        PciBar bar0 = nvme.GetBar(0);
        bar0.Kind.ShouldBe(PciBarKind.Memory);
        bar0.Is64Bit.ShouldBeTrue();
        bar0.Size.ShouldBe(nvme.Device.GetRegion(VfioPciRegion.Bar0).Size);
        ulong.IsPow2(bar0.Size).ShouldBeTrue();
        bar0.CanMap.ShouldBeTrue();
        nvme.GetBar(1).Kind.ShouldBe(PciBarKind.UpperHalf);
        nvme.GetBar(1).Size.ShouldBe(0UL);
        Should.Throw<InvalidOperationException>(() => nvme.MapBar(1)).Message.ShouldContain("upper half");
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void PciTestDev_MemoryIoAnd64BitPrefetchableBars(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var testdev = new VfioPciDevice(rig.Attach(Target.PciTestDev));

        testdev.Bars.Select(b => b.Kind).ShouldBe([PciBarKind.Memory, PciBarKind.Io, PciBarKind.Memory, PciBarKind.UpperHalf, PciBarKind.Unimplemented, PciBarKind.Unimplemented]);
        PciBar mmio = testdev.GetBar(0);
        (mmio.Is64Bit, mmio.IsPrefetchable, mmio.Size).ShouldBe((false, false, 4096UL));
        PciBar io = testdev.GetBar(1);
        io.Size.ShouldBe(256UL);
        io.CanMap.ShouldBeFalse();
        PciBar large = testdev.GetBar(2);
        (large.Is64Bit, large.IsPrefetchable, large.Size).ShouldBe((true, true, 2UL << 20));
        testdev.GetBar(4).Size.ShouldBe(0UL);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void PciTestDev_IoBarIsReadThroughTheRegion_AndMappingItIsRefused(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var testdev = new VfioPciDevice(rig.Attach(Target.PciTestDev));
        testdev.SetIoSpace(true);

        Span<byte> bytes = stackalloc byte[4];
        testdev.Device.ReadRegion(1, 0, bytes);   // through the kernel's port I/O
        var e = Should.Throw<InvalidOperationException>(() => testdev.MapBar(1));
        e.Message.ShouldContain("I/O-port BAR");
        e.Message.ShouldContain(Target.PciTestDev);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void PciTestDev_LargeBarMapsWhole(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var testdev = new VfioPciDevice(rig.Attach(Target.PciTestDev));
        testdev.SetMemorySpace(true);

        VfioRegionMapping bar2 = testdev.MapBar(2);
        bar2.Areas.ShouldHaveSingleItem().Size.ShouldBe(2UL << 20);
        testdev.MapBar(2).ShouldBeSameAs(bar2);
        using MmioWindow window = bar2.Acquire(0, 2UL << 20);
        window.Length.ShouldBe(2UL << 20);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Bars_AreMappedAtTheirSizeBoundary_ForHugePageBacking(Mode mode)
    {
        // QEMU's placement: a BAR's mapping starts at a multiple of its size (capped at 1 GiB), so vfio-pci can back
        // it with 2 MiB entries; pci-testdev's 2 MiB BAR2 and edu's 1 MiB BAR0.
        using Rig rig = Rig.Create(mode);
        using var testdev = new VfioPciDevice(rig.Attach(Target.PciTestDev));
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));
        testdev.SetMemorySpace(true);
        edu.SetMemorySpace(true);

        MemoryMapping bar2 = testdev.MapBar(2).Areas.ShouldHaveSingleItem().Mapping;
        ((ulong)bar2.DangerousGetHandle() % (2UL << 20)).ShouldBe(0UL);
        MemoryMapping bar0 = edu.MapBar(0).Areas.ShouldHaveSingleItem().Mapping;
        ((ulong)bar0.DangerousGetHandle() % (1UL << 20)).ShouldBe(0UL);
        bar0.Read32(0).ShouldBe(EduDriver.Identification);
        bar0.Write32(0x04, 0x1234_5678);
        bar0.Read32(0x04).ShouldBe(~0x1234_5678u);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_Bar0ThroughMmioWindow(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));
        edu.SetMemorySpace(true);
        PciBar bar0 = edu.GetBar(0);
        (bar0.Kind, bar0.Is64Bit, bar0.IsPrefetchable, bar0.Size).ShouldBe((PciBarKind.Memory, false, false, 1UL << 20));

        using MmioWindow window = edu.MapBar(0).Acquire(0, 0x100);
        window.Read32(0x00).ShouldBe(EduDriver.Identification);
        window.Write32(0x04, 0x0F0F_1234);
        window.Read32(0x04).ShouldBe(~0x0F0F_1234u);
        edu.Device.ReadRegion32(VfioPciRegion.Bar0, 0x04).ShouldBe(~0x0F0F_1234u);   // the same register by pread
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Nvme_MsixMappable_Bar0MapsWhole_WithoutAHole(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));
        PciBar bar0 = nvme.GetBar(0);

        bar0.Region.IsMsixMappable.ShouldBeTrue();   // Linux 6.12 always reports the MSI-X table mappable
        bar0.Region.SparseMmapAreas.ShouldBeNull();
        VfioRegionMapping mapping = nvme.MapBar(0);
        mapping.Areas.ShouldHaveSingleItem().Size.ShouldBe(bar0.Size);
        PciMsixLayout msix = nvme.MsixLayout!.Value;
        mapping.IsMapped(msix.TableOffset, msix.TableSize).ShouldBeTrue();
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void BarIndexOutOfRange_AndUnimplementedBars_AreRefused(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        Should.Throw<ArgumentOutOfRangeException>(() => edu.GetBar(6)).Message.ShouldContain(Target.Edu);
        Should.Throw<ArgumentOutOfRangeException>(() => edu.MapBar(-1)).Message.ShouldContain("0 to 5");
        edu.GetBar(1).Kind.ShouldBe(PciBarKind.Unimplemented);
        Should.Throw<InvalidOperationException>(() => edu.MapBar(1)).Message.ShouldContain("not implemented");
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Dispose_UnmapsTheBars_AndLeavesTheDeviceAttached(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        var edu = new VfioPciDevice(attached);
        edu.SetMemorySpace(true);
        VfioRegionMapping bar0 = edu.MapBar(0);

        edu.Dispose();

        Should.Throw<ObjectDisposedException>(() => bar0.Acquire(0, 4));
        Should.Throw<ObjectDisposedException>(() => edu.MapBar(0));
        attached.IsAttached.ShouldBeTrue();
        attached.Device.ReadRegion32(VfioPciRegion.Bar0, 0).ShouldBe(EduDriver.Identification);
    }
}

/// <summary>Devices.Pci's expansion ROM: present (the edu behind the root port, given a ROM file) and absent.</summary>
public sealed class PciRomTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void EduBehindRootPort_RomIsRead(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.EduBehindRootPort));

        edu.HasRom.ShouldBeTrue();
        edu.RomSize.ShouldBe(4096UL);
        edu.TryReadRom(out byte[]? rom).ShouldBeTrue();
        rom!.Length.ShouldBe(4096);
        (rom[0], rom[1]).ShouldBe(((byte)0x55, (byte)0xAA));
        Encoding.ASCII.GetString(rom, 0x20, 4).ShouldBe("PCIR");
        BitConverter.ToUInt16(rom, 0x24).ShouldBe((ushort)0x1234);
        Encoding.ASCII.GetString(rom, 0x40, 24).ShouldBe("VFIO for .NET option ROM");
        Span<byte> part = stackalloc byte[4];
        edu.ReadRom(0x20, part);
        Encoding.ASCII.GetString(part).ShouldBe("PCIR");
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_WithoutRom_GivesAClearAnswer(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));

        edu.HasRom.ShouldBeFalse();
        edu.RomSize.ShouldBe(0UL);
        edu.TryReadRom(out byte[]? rom).ShouldBeFalse();
        rom.ShouldBeNull();
        Should.Throw<InvalidOperationException>(() => edu.ReadRom(0, new byte[4])).Message.ShouldContain("HasRom");
    }
}

/// <summary>Devices.Pci's resets: function reset with the command register quiesced, hot reset with the backend's
/// proof (group fds under legacy and iommufd-compat, device ids under iommufd), and the refusals.</summary>
public sealed class PciResetTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Nvme_FunctionReset_QuiescesTheCommandRegister(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));
        nvme.SupportsReset.ShouldBeTrue();
        nvme.SetMemorySpace(true);
        nvme.SetBusMaster(true);

        nvme.Reset();

        (nvme.ReadCommand() & VfioPciDevice.QuiescedBits).ShouldBe(PciCommand.None);
        nvme.SetMemorySpace(true);
        uint cap = nvme.Device.ReadRegion32(VfioPciRegion.Bar0, 0);
        cap.ShouldNotBe(0u);
        cap.ShouldNotBe(uint.MaxValue);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Edu_OnTheRootBus_HasNoReset(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));
        edu.SetMemorySpace(true);

        edu.SupportsReset.ShouldBeFalse();
        var e = Should.Throw<PciResetUnavailableException>(edu.Reset);
        e.Message.ShouldContain(Target.Edu);
        e.Hint.ShouldNotBeNull().ShouldContain("HotReset");
        (edu.ReadCommand() & PciCommand.MemorySpace).ShouldBe(PciCommand.MemorySpace);   // nothing was changed
        var hot = Should.Throw<PciResetUnavailableException>(() => edu.GetHotResetInfo());
        hot.KernelErrno.ShouldBe(Errno.ENODEV);
        Should.Throw<PciResetUnavailableException>(() => edu.HotReset());
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void EduBehindRootPort_FunctionResetByItsBus(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.EduBehindRootPort));
        edu.SupportsReset.ShouldBeTrue();   // alone on a non-root bus: vfio-pci's "bus" reset method
        edu.SetMemorySpace(true);
        edu.SetBusMaster(true);

        edu.Reset();

        (edu.ReadCommand() & VfioPciDevice.QuiescedBits).ShouldBe(PciCommand.None);
        edu.SetMemorySpace(true);
        edu.Device.ReadRegion32(VfioPciRegion.Bar0, 0).ShouldBe(EduDriver.Identification);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void EduBehindRootPort_HotResetInfo_ListsItselfOwned(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.EduBehindRootPort);
        using var edu = new VfioPciDevice(attached);

        PciHotResetInfo info = edu.GetHotResetInfo();

        PciHotResetDevice self = info.Devices.ShouldHaveSingleItem();
        self.Address.ShouldBe(Target.EduBehindRootPort);
        self.IsOwned.ShouldBeTrue();
        info.AllOwned.ShouldBeTrue();
        info.UsesDeviceIds.ShouldBe(mode == Mode.IommuFd);
        if (mode == Mode.IommuFd)
        {
            self.IommuGroup.ShouldBeNull();
            self.DeviceId.ShouldBe(attached.GetHotResetProof().DeviceId);
        }
        else
        {
            self.IommuGroup.ShouldBe(attached.IommuGroup);
            self.DeviceId.ShouldBeNull();
        }
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void EduBehindRootPort_HotResetWithTheBackendsProof(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.EduBehindRootPort);
        using var edu = new VfioPciDevice(attached);
        attached.GetHotResetProof().UsesDeviceIds.ShouldBe(mode == Mode.IommuFd);   // devid form with no fds, or group fds
        edu.SetMemorySpace(true);
        edu.SetBusMaster(true);
        edu.MapBar(0);

        PciHotResetInfo reset = edu.HotReset();

        reset.Devices.ShouldHaveSingleItem().Address.ShouldBe(Target.EduBehindRootPort);
        (edu.ReadCommand() & VfioPciDevice.QuiescedBits).ShouldBe(PciCommand.None);
        edu.SetMemorySpace(true);
        using MmioWindow window = edu.MapBar(0).Acquire(0, 8);   // the mapping faults back in after the reset
        window.Read32(0).ShouldBe(EduDriver.Identification);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void EduWithPeer_HotResetThatWouldResetADriverlessPeer_IsRefusedNamingIt(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.EduWithPeer));

        PciHotResetInfo info = edu.GetHotResetInfo();
        info.Devices.Select(d => d.Address).Order().ShouldBe([Target.EduWithPeer, Target.EduPeerWithoutDriver]);
        // iommufd: the peer is bound to no iommufd; group fds: the group is owned, but the peer has no VFIO driver.
        info.Devices.Single(d => d.Address == Target.EduPeerWithoutDriver).IsOwned.ShouldBe(mode != Mode.IommuFd);

        var e = Should.Throw<PciHotResetOwnershipException>(() => edu.HotReset());
        e.AffectedDevice.ShouldBe(Target.EduPeerWithoutDriver);
        e.Message.ShouldContain(Target.EduPeerWithoutDriver);
        e.Hint.ShouldNotBeNull().ShouldContain(Target.EduPeerWithoutDriver);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.GroupFdModes), MemberType = typeof(Target))]
    public void HotReset_WithAProofThatMissesTheGroup_IsRefusedNamingTheDevice(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.EduBehindRootPort));
        // Another backend holds only edu's group at 00:02.0: its proof does not cover 02:00.0's group.
        IIommuBackend other = rig.NewBackend(rig.OptionsFor(mode));
        AttachedDevice stranger = other.AttachDevice(VfioDeviceSource.Pci(Target.Edu), rig.NewSpace("other"));

        var e = Should.Throw<PciHotResetOwnershipException>(() => edu.HotReset(stranger.GetHotResetProof()));

        e.AffectedDevice.ShouldBe(Target.EduBehindRootPort);
        e.Message.ShouldContain("IOMMU group");
        edu.HotReset().Devices.ShouldHaveSingleItem();   // with its own backend's proof it works
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuFdModes), MemberType = typeof(Target))]
    public void HotReset_OfACdevDevice_WithAGroupFdProof_IsAnArgumentError(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.EduBehindRootPort));
        using var legacy = new LegacyBackend(rig.Kernel);
        using var space = new DmaSpace("legacy");
        AttachedDevice stranger = legacy.AttachDevice(VfioDeviceSource.Pci(Target.Edu), space);

        Should.Throw<ArgumentException>(() => edu.HotReset(stranger.GetHotResetProof())).Message.ShouldContain("device-id proof");
        stranger.Dispose();
    }
}
