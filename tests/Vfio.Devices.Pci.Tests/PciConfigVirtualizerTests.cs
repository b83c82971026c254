// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Simulator;

namespace Vfio.Devices.Pci.Tests;

/// <summary><see cref="PciConfigVirtualizer"/> on the simulated testbed: what a guest sees and what its writes do.</summary>
public sealed class PciConfigVirtualizerTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);

    [Fact]
    public void Bar_sizing_and_addresses_are_emulated_and_never_reach_the_device()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        uint hostBar0 = edu.ReadConfig32(0x10);
        var v = new PciConfigVirtualizer(edu);

        v.Read(0x10, 4).ShouldBe(0u, "the guest starts with its BARs unassigned");
        v.Write(0x10, 4, 0xffffffff);
        v.Read(0x10, 4).ShouldBe(0xfff00000u, "edu's BAR0 is 1 MiB, 32-bit memory");
        v.Write(0x10, 4, 0xfe000000);
        v.Read(0x10, 4).ShouldBe(0xfe000000u);
        v.GetBarAddress(0).ShouldBe(0xfe000000UL);
        v.Write(0x14, 4, 0xffffffff);
        v.Read(0x14, 4).ShouldBe(0u, "BAR1 is not implemented");
        edu.ReadConfig32(0x10).ShouldBe(hostBar0, "the guest's address stays in the emulation");
        v.Write(0x30, 4, 0xffffffff);
        v.Read(0x30, 4).ShouldBe(0u, "edu has no ROM");
        v.GetRomAddress(out bool enabled).ShouldBe(0u);
        enabled.ShouldBeFalse();
    }

    [Fact]
    public void A_64_bit_bar_sizes_in_both_halves()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);
        var v = new PciConfigVirtualizer(nvme);
        v.Read(0x10, 4).ShouldBe(0x4u, "64-bit memory type bits stay");
        v.Write(0x10, 4, 0xffffffff);
        v.Write(0x14, 4, 0xffffffff);
        v.Read(0x10, 4).ShouldBe(0xffffc004u, "16 KiB");
        v.Read(0x14, 4).ShouldBe(0xffffffffu);
        v.Write(0x10, 4, 0x00008000);
        v.Write(0x14, 4, 0x1);
        v.GetBarAddress(0).ShouldBe(0x1_0000_8000UL);
        v.GetBarAddress(1).ShouldBe(0UL, "the upper half is not a BAR of its own");
    }

    [Fact]
    public void Multifunction_bit_is_the_vmms_and_other_registers_pass_through()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        var v = new PciConfigVirtualizer(edu);
        (v.Read(0x0e, 1) & 0x80).ShouldBe(0u);
        v.Multifunction = true;
        (v.Read(0x0e, 1) & 0x80).ShouldBe(0x80u);
        v.Read(0x0c, 4).ShouldBe(edu.ReadConfig32(0x0c) | 0x00800000, "one dword mixes passed-through and emulated bytes");
        v.Read(0x00, 4).ShouldBe(0x11e81234u, "identity passes through");

        v.Write(0x04, 2, 0x0006);
        v.GuestCommand.ShouldBe((ushort)0x0006);
        (edu.ReadCommand() & (PciCommand.MemorySpace | PciCommand.BusMaster)).ShouldBe(PciCommand.MemorySpace | PciCommand.BusMaster, "the command register reaches the device");
        v.Read(0x04, 2).ShouldBe((uint)edu.ReadConfig16(0x04));
    }

    [Fact]
    public void Guest_msi_enable_turns_into_vectors_and_disable_returns_to_intx()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        var v = new PciConfigVirtualizer(edu);
        edu.InterruptMode.ShouldBe(PciInterruptMode.Intx, "a device with a pin starts in INTx");
        int changes = 0;
        v.InterruptsChanged += (_, _) => changes++;

        PciMsiCapability msi = edu.Msi.Capability!.Value;
        (v.Read(msi.Offset + 2, 2) & PciMsiCapability.EnableBit).ShouldBe(0u);
        v.Write(msi.Offset + 4, 4, 0xfee00000);
        v.Write(msi.Offset + 8, 4, 0);
        v.Write(msi.DataOffset, 2, 0x4041);
        v.Write(msi.Offset + 2, 2, v.Read(msi.Offset + 2, 2) | PciMsiCapability.EnableBit);
        edu.InterruptMode.ShouldBe(PciInterruptMode.Msi);
        edu.Msi.VectorCount.ShouldBe(1);
        changes.ShouldBe(1);
        v.GetMsiMessage(0).ShouldBe(new PciMsiMessage(0xfee00000, 0x4041));
        (v.Read(msi.Offset + 2, 2) & PciMsiCapability.EnableBit).ShouldBe(1u);

        edu.SetBusMaster(true);
        PciInterruptTests.RaiseEdu(edu);
        edu.Msi.TryWait(0, s_timeout, out _).ShouldBeTrue();
        PciInterruptTests.AckEdu(edu);

        v.Write(msi.Offset + 2, 2, v.Read(msi.Offset + 2, 2) & ~(uint)PciMsiCapability.EnableBit);
        edu.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        changes.ShouldBe(2);
    }

    [Fact]
    public void Guest_msix_enable_starts_with_no_vector_and_the_table_emulation_adds_them()
    {
        using var testbed = new SimulatedTestbed(topology: SimulatedTestbed.MsixMachine());
        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);
        var v = new PciConfigVirtualizer(nvme);
        PciMsixLayout layout = nvme.Msix.Layout!.Value;
        int control = layout.CapabilityOffset + 2;
        v.Read(control, 2).ShouldBe(64u, "table size 65, disabled");
        v.Read(layout.CapabilityOffset + 4, 4).ShouldBe(nvme.ReadConfig32(layout.CapabilityOffset + 4), "the table location is the device's");

        v.Write(control, 2, 0x8000 | 0x4000);
        nvme.Msix.IsEnabled.ShouldBeTrue();
        nvme.Msix.VectorCount.ShouldBe(0);
        v.MsixFunctionMasked.ShouldBeTrue();
        v.Write(control, 2, 0x8000);
        v.MsixFunctionMasked.ShouldBeFalse();

        v.SetMsixVectorInUse(3, true);
        nvme.Msix.VectorCount.ShouldBe(4);
        nvme.Msix.IsMasked(0).ShouldBeTrue("vectors the guest does not use stay masked");
        nvme.Msix.IsMasked(3).ShouldBeFalse();
        nvme.SetBusMaster(true);
        PciInterruptTests.SendMsix(nvme, 3);
        nvme.Msix.TryWait(3, s_timeout, out _).ShouldBeTrue();
        v.SetMsixVectorInUse(3, false);
        nvme.Msix.IsMasked(3).ShouldBeTrue();

        v.Write(control, 2, 0);
        nvme.Msix.IsEnabled.ShouldBeFalse();
        nvme.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        Should.Throw<InvalidOperationException>(() => v.SetMsixVectorInUse(0, true)).Message.ShouldContain("has not enabled MSI-X");
    }

    [Fact]
    public void A_guest_enabling_msix_over_msi_switches_and_a_late_msi_disable_changes_nothing()
    {
        using var testbed = new SimulatedTestbed(topology: InterruptTestDevice.Machine(new InterruptTestDevice(1, msixVectors: 4)));
        VfioPciDevice device = testbed.Open(InterruptTestDevice.Address);
        var v = new PciConfigVirtualizer(device);
        PciMsiCapability msi = device.Msi.Capability!.Value;
        int msixControl = device.Msix.Layout!.Value.CapabilityOffset + 2;
        v.Write(msi.Offset + 2, 2, PciMsiCapability.EnableBit);
        device.InterruptMode.ShouldBe(PciInterruptMode.Msi);
        v.Write(msixControl, 2, 0x8000);
        device.InterruptMode.ShouldBe(PciInterruptMode.Msix);
        v.Write(msi.Offset + 2, 2, 0);
        device.InterruptMode.ShouldBe(PciInterruptMode.Msix, "MSI-X stays; INTx comes back only when nothing is enabled");
        v.Write(msixControl, 2, 0);
        device.InterruptMode.ShouldBe(PciInterruptMode.Intx);
    }

    [Fact]
    public void Bad_accesses_are_refused()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        var v = new PciConfigVirtualizer(edu);
        Should.Throw<ArgumentOutOfRangeException>(() => v.Read(0, 3));
        Should.Throw<ArgumentOutOfRangeException>(() => v.Read(2, 4)).Message.ShouldContain("aligned");
        Should.Throw<ArgumentOutOfRangeException>(() => v.Write(v.ConfigSize, 1, 0));
        Should.Throw<ArgumentOutOfRangeException>(() => v.GetBarAddress(6));
    }
}
