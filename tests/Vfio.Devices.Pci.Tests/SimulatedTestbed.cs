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
