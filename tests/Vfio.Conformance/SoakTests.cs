// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Shouldly;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>
/// The soak: a device's whole life in a loop — a new space, attach, map, an edu DMA round trip that ends with its MSI,
/// detach, dispose — for a bounded time per backend, with the process's fds, its locked memory, the vfio interrupt
/// handlers and (on the simulator) the kernel's object tables compared at the start and the end, and no kernel report
/// added to the log. <c>VFIO_SOAK_SECONDS</c> is the whole run's length, shared by the modes (default 60 s on the real
/// kernel, 3 s on the simulator); tests/testbed/soak.sh runs it for minutes in the testbed guest.
/// </summary>
public sealed class SoakTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public void AttachMapDmaMsiDetach_InALoop_NothingGrows(Mode mode)
    {
        int total = Knobs.Int("VFIO_SOAK_SECONDS", Target.IsKernel ? 60 : 3);
        TimeSpan length = TimeSpan.FromSeconds(Math.Max(1.0, (double)total / Target.VtdModes().Count()));
        using Rig rig = Rig.Create(mode);
        using var log = new KernelLog(rig);
        Cycle(rig, 0);   // what the process opens once (the shared poller) is open before the start figures
        LeakSnapshot start = LeakSnapshot.Take(rig);
        long heapStart = GC.GetTotalMemory(forceFullCollection: true);

        var clock = Stopwatch.StartNew();
        int cycles = 0;
        while (clock.Elapsed < length)
        {
            Cycle(rig, ++cycles);
        }
        clock.Stop();

        LeakSnapshot end = LeakSnapshot.Take(rig);
        long heapEnd = GC.GetTotalMemory(forceFullCollection: true);
        string[] reports = KernelLog.Reports(log.ReadNew());
        Knobs.Report($"soak {mode}: {cycles} cycles (attach, map, DMA, MSI, detach) in {clock.Elapsed.TotalSeconds:F0} s, " +
            $"{cycles / clock.Elapsed.TotalSeconds:F1}/s; start: {start.Describe()}; end: {end.Describe()}; " +
            $"managed heap {heapStart / 1024} -> {heapEnd / 1024} KiB; kernel reports added: {reports.Length}");
        cycles.ShouldBeGreaterThan(0);
        start.ShouldEqual(end, $"soak {mode} after {cycles} cycles");
        reports.ShouldBeEmpty($"soak {mode}: the kernel logged a report during the run");
    }

    /// <summary>One life of a device: alternately edu and the second edu, so both groups (or cdevs) cycle.</summary>
    private static void Cycle(Rig rig, int cycle)
    {
        string name = cycle % 2 == 0 ? Target.Edu : Target.Edu2;
        using var space = new DmaSpace("soak");
        using AttachedDevice attached = rig.Attach(name, space);
        using DmaBuffer buffer = DmaBufferPages.Allocate(space, 2);
        using var edu = new EduDriver(attached, useMmap: true);
        edu.EnableBusMaster();
        edu.AcknowledgeInterrupt(edu.ReadInterruptStatus());   // edu has no reset: what an earlier case left is not this DMA's
        using var msi = new InterruptEvent();
        attached.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [msi]);

        byte[] pattern = Patterns.Make(1024, cycle);
        pattern.CopyTo(buffer.Page(0));
        buffer.Page(1)[..1024].Clear();
        edu.DmaToDevice(buffer.Iova, 0, 1024, Rig.Timeout);
        edu.DmaFromDevice(0, buffer.Iova + 4096, 1024, Rig.Timeout, raiseInterrupt: true);
        msi.TryWait(Rig.Timeout, out ulong count).ShouldBeTrue($"cycle {cycle}: the MSI of the DMA's completion on {name}");
        count.ShouldBe(1UL);
        edu.ReadInterruptStatus().ShouldBe(EduDriver.DmaInterruptStatus);
        edu.AcknowledgeInterrupt(EduDriver.DmaInterruptStatus);
        buffer.Page(1)[..1024].ToArray().ShouldBe(pattern, $"cycle {cycle}: the DMA round trip on {name}");
        attached.Device.DisableIrq(VfioPciIrq.Msi);
    }
}
