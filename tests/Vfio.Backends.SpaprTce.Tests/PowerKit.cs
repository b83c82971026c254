// SPDX-License-Identifier: MIT

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>Simulated POWER hosts (sPAPR TCE instead of Type1) with edu devices, and the DMA check through them.</summary>
internal static class PowerKit
{
    internal const string EduA = "0000:00:02.0";
    internal const string EduB = "0000:00:03.0";

    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    /// <summary>A POWER host with two edus in IOMMU groups 2 and 3.</summary>
    internal static SimulatedKernel Host(Action<SimulatedTopology>? configure = null)
    {
        var topology = new SimulatedTopology { Iommu = SimulatedIommu.SpaprTce }
            .AddPci(EduA, iommuGroup: 2, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(1) })
            .AddPci(EduB, iommuGroup: 3, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(1) });
        configure?.Invoke(topology);
        return new SimulatedKernel(topology);
    }

    internal static VfioDeviceSource Edu(string address = EduA) => VfioDeviceSource.Pci(address);

    /// <summary>RAM → edu → RAM through <paramref name="memory"/> (first KiB out, second page back) and a byte check.</summary>
    internal static void DmaRoundTrip(AttachedDevice edu, DmaBuffer memory)
    {
        Span<byte> bytes = memory.Span;
        for (int i = 0; i < 1024; i++)
        {
            bytes[i] = (byte)(i ^ 0x5a);
        }
        bytes.Slice(4096, 1024).Clear();
        using var driver = new EduDriver(edu, useMmap: true);
        driver.EnableBusMaster();
        driver.DmaToDevice(memory.Iova, 0, 1024, s_timeout);
        driver.DmaFromDevice(0, memory.Iova + 4096, 1024, s_timeout);
        bytes.Slice(4096, 1024).SequenceEqual(bytes[..1024]).ShouldBeTrue("the bytes came back through the TCE table");
    }

    /// <summary>After everything was disposed: no fd, TCE, pre-registration or locked page is left.</summary>
    internal static void ShouldBeClean(SimulatedKernel kernel) => kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
}

/// <summary>A POWER host with edu A attached by the sPAPR TCE backend into a fresh space; disposed in reverse.</summary>
internal sealed class PowerRig : IDisposable
{
    internal PowerRig(Action<SimulatedTopology>? configure = null)
    {
        Kernel = PowerKit.Host(configure);
        Backend = new SpaprTceBackend(Kernel);
        Space = new DmaSpace();
        Edu = Backend.AttachDevice(PowerKit.Edu(), Space);
    }

    internal SimulatedKernel Kernel { get; }

    internal SpaprTceBackend Backend { get; }

    internal DmaSpace Space { get; }

    internal AttachedDevice Edu { get; }

    internal SpaprTceContainer Container => (SpaprTceContainer)Edu.Container;

    public void Deconstruct(out SimulatedKernel kernel, out SpaprTceBackend backend, out DmaSpace space, out AttachedDevice edu, out SpaprTceContainer container)
        => (kernel, backend, space, edu, container) = (Kernel, Backend, Space, Edu, Container);

    public void Dispose()
    {
        Edu.Dispose();
        Space.Dispose();
        Backend.Dispose();
        Kernel.Dispose();
    }
}
