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

    /// <summary>RAM → edu → RAM through <paramref name="buffer"/> (2 pages: source page 0, destination page 1);
    /// asserts the bytes came back and no DMA faulted.</summary>
    internal static void RoundTrip(SimulatedKernel kernel, AttachedDevice device, DmaBuffer buffer, int seed = 42)
    {
        using var edu = new EduDriver(device, useMmap: true);
        edu.EnableBusMaster();
        byte[] pattern = new byte[1024];
        new Random(seed).NextBytes(pattern);
        pattern.CopyTo(buffer.Span);
        buffer.Span.Slice(4096, 1024).Clear();
        edu.DmaToDevice(buffer.Iova, 0, 1024, EduTimeout);
        edu.DmaFromDevice(0, buffer.Iova + 4096, 1024, EduTimeout);
        buffer.Span.Slice(4096, 1024).ToArray().ShouldBe(pattern);
        kernel.DmaFaults.ShouldBeEmpty();
    }
}
