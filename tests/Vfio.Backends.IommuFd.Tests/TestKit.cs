// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;
using Vfio.Samples.Edu;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>Machines with edu devices, DMA helpers and page-aligned buffers for the iommufd backend tests.</summary>
internal static class TestKit
{
    internal const string Edu0 = "0000:00:02.0";
    internal const string Edu1 = "0000:00:03.0";
    internal const ulong EduMask = 0x0fff_ffff;

    /// <summary>Two edu devices in IOMMU groups 2 and 3.</summary>
    internal static SimulatedKernel Machine(Action<SimulatedTopology>? configure = null)
    {
        var topology = new SimulatedTopology()
            .AddPci(Edu0, iommuGroup: 2, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(1) })
            .AddPci(Edu1, iommuGroup: 3, new EduDevice { DmaDelay = TimeSpan.FromMilliseconds(1) });
        configure?.Invoke(topology);
        return new SimulatedKernel(topology);
    }

    internal static int ProcessFdCount() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>How long edu's DMA engine may take.</summary>
    internal static readonly TimeSpan EduTimeout = TimeSpan.FromSeconds(10);

    /// <summary>RAM → edu → RAM through <paramref name="mapping"/> (2 pages: source page 0, destination page 1);
    /// asserts the bytes came back and no DMA faulted.</summary>
    internal static void RoundTrip(SimulatedKernel kernel, VfioDevice device, Pages pages, DmaMapping mapping, int seed = 42)
    {
        using var edu = new EduDriver(device, useMmap: true);
        edu.EnableBusMaster();
        byte[] pattern = new byte[1024];
        new Random(seed).NextBytes(pattern);
        pages.Write(0, pattern);
        pages.Write(4096, new byte[1024]);
        edu.DmaToDevice(mapping.Iova, 0, 1024, EduTimeout);
        edu.DmaFromDevice(0, mapping.Iova + 4096, 1024, EduTimeout);
        pages.Read(4096, 1024).ShouldBe(pattern);
        kernel.DmaFaults.ShouldBeEmpty();
    }
}

/// <summary>Page-aligned process memory, freed on dispose.</summary>
internal sealed class Pages : IDisposable
{
    private readonly nint _raw;

    internal Pages(int count)
    {
        Length = count * 4096;
        _raw = Marshal.AllocHGlobal(Length + 4096);
        Address = (_raw + 4095) & ~(nint)4095;
        Marshal.Copy(new byte[Length], 0, Address, Length);
    }

    internal nint Address { get; }

    internal int Length { get; }

    internal ulong Size => (ulong)Length;

    internal byte[] Read(int offset, int count)
    {
        byte[] bytes = new byte[count];
        Marshal.Copy(Address + offset, bytes, 0, count);
        return bytes;
    }

    internal void Write(int offset, byte[] bytes) => Marshal.Copy(bytes, 0, Address + offset, bytes.Length);

    public void Dispose() => Marshal.FreeHGlobal(_raw);
}
