// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Devices.Pci.Tests;

/// <summary>The simulated testbed machine with one backend (legacy or iommufd); attaches PCI devices into one space.</summary>
internal sealed class SimulatedTestbed : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    internal SimulatedTestbed(bool iommufd = false, SimulatedTopology? topology = null)
    {
        Kernel = new SimulatedKernel(topology ?? SimulatedMachines.Testbed());
        Backend = iommufd ? new IommuFdBackend(Kernel) : new LegacyBackend(Kernel);
        Space = new DmaSpace("pci-tests");
    }

    /// <summary>The MSI-X test device at the testbed nvme's address (00:03.0, 65 vectors, QEMU nvme's BAR0 layout):
    /// it sends vector n when n is written to its register 0x08 (<see cref="PciInterruptTests.SendMsix"/>), where the
    /// testbed's NVMe controller sends one only when it completes a command.</summary>
    internal static SimulatedTopology MsixMachine()
        => new SimulatedTopology().AddPci(SimulatedMachines.Nvme, iommuGroup: 3, new MsixTestDevice(vectors: 65, sparseMmap: false));

    internal SimulatedKernel Kernel { get; }

    internal IommuBackend Backend { get; }

    internal DmaSpace Space { get; }

    internal AttachedDevice Attach(string address) => Backend.AttachDevice(VfioDeviceSource.Pci(address), Space);

    internal VfioPciDevice Open(string address)
    {
        AttachedDevice attached = Attach(address);
        var pci = new VfioPciDevice(attached);
        _owned.Add(pci);
        return pci;
    }

    public void Dispose()
    {
        foreach (IDisposable owned in Enumerable.Reverse(_owned))
        {
            owned.Dispose();
        }
        Space.Dispose();
        Backend.Dispose();
        Kernel.Dispose();
    }
}
