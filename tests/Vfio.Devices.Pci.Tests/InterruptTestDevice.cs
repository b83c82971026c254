// SPDX-License-Identifier: MIT
using Vfio.Simulator;

namespace Vfio.Devices.Pci.Tests;

/// <summary>A simulated PCI device for the interrupt cases the testbed's devices do not cover: a multiple-message MSI
/// capability, a host that allocates fewer vectors, no INTx pin, MSI-X without dynamic allocation. BAR0 (4 KiB): write
/// <c>n</c> at 0x0 to send MSI vector <c>n</c>, at 0x8 to send MSI-X vector <c>n</c>; the MSI-X table is at 0x800.</summary>
internal sealed class InterruptTestDevice(int msiVectors, int hostVectorLimit = int.MaxValue, byte interruptPin = 1, int msixVectors = 0,
    bool dynamicMsix = true) : EmulatedPciDevice
{
    internal const string Address = "0000:00:06.0";

    private readonly Vfio.Simulator.PciBar?[] _bars = [new Vfio.Simulator.PciBar(0x1000), null, null, null, null, null];

    public override ushort VendorId => 0x1b36;

    public override ushort DeviceId => 0x0bae;

    public override uint ClassCode => 0xff0000;

    public override IReadOnlyList<Vfio.Simulator.PciBar?> Bars => _bars;

    public override int MsiVectors => msiVectors;

    public override int HostVectorLimit => hostVectorLimit;

    public override byte InterruptPin => interruptPin;

    public override int MsixVectors => msixVectors;

    public override uint MsixTableOffset => 0x800;

    public override uint MsixPbaOffset => 0xc00;

    public override bool DynamicMsix => dynamicMsix;

    /// <summary>The testbed machine with this device added at <see cref="Address"/> (IOMMU group 6).</summary>
    /// <remarks>Without interrupt remapping the machine allows unsafe interrupts, as a host must for VFIO to attach.</remarks>
    internal static SimulatedTopology Machine(InterruptTestDevice device, bool interruptRemapping = true)
    {
        SimulatedTopology topology = SimulatedMachines.Testbed(new SimulatedTestbedOptions { InterruptRemapping = interruptRemapping });
        topology.AllowUnsafeInterrupts = !interruptRemapping;
        return topology.AddPci(Address, iommuGroup: 6, device);
    }

    protected override ulong ReadBar(int bar, ulong offset, int width) => 0;

    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
        if (offset == 0x8)
        {
            NotifyMsix((int)value);
        }
        else
        {
            NotifyMsi((int)value);
        }
    }
}
