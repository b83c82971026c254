// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Vfio.Benchmarks;

/// <summary>
/// The guest goals of issue 11 (G1, G2, G3, G6, G7), run inside the testbed's QEMU guest (pci shape) by bench.sh and,
/// as a smoke pass without timing, by test.sh's kernel-pci tier. C (bench/native, loaded into this process) and the
/// library run in interleaved rounds on the same fds, buffers and BAR mapping: edu 0000:00:02.0 attached through a
/// Type1 container (G1, G3 Type1, G6, G7) and edu 0000:00:04.0 through iommufd (G2, G3 iommufd).
/// </summary>
internal static unsafe class GuestGoals
{
    private const string Type1Edu = "0000:00:02.0";
    private const string IommuFdEdu = "0000:00:04.0";
    private const int Bar0 = 0;
    private const ulong Page = 4096;
    private const ulong Big = 64UL << 20;
    private const ulong FixedIova = 1UL << 32;      // G2: above every Type1/IOAS reserved range of the testbed
    private const ulong BigIova = 1UL << 33;        // G3

    // VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA: _IO(';', VFIO_BASE + 13 and + 14), for the bare-ioctl part of G1.
    private const uint Type1MapDma = (';' << 8) | (100 + 13);
    private const uint Type1UnmapDma = (';' << 8) | (100 + 14);

    [StructLayout(LayoutKind.Sequential)]
    private struct Type1Map
    {
        public uint Argsz;
        public uint Flags;
        public ulong Vaddr;
        public ulong Iova;
        public ulong Size;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Type1Unmap
    {
        public uint Argsz;
        public uint Flags;
        public ulong Iova;
        public ulong Size;
    }

    private sealed record Sizes(int Rounds, int Pages, int PairOps, int BigOps, int PreadOps, int IrqOps);

    /// <summary>Runs the goals; returns the exit code. <paramref name="smoke"/>: one short round, checks that C and the
    /// library agree and that the library allocates nothing, no timing verdict. Goal lines go to stdout; the rows of
    /// docs/performance.md to <paramref name="rowsPath"/>; an xunit-style result file to <paramref name="xmlPath"/>.</summary>
    internal static int Run(bool quick, bool smoke, string? rowsPath, string? xmlPath)
    {
        Sizes sizes = smoke ? new(1, 64, 32, 1, 64, 100) : quick ? new(7, 4096, 512, 2, 1000, 200) : new(15, 4096, 2048, 4, 4000, 1000);
        var failures = new List<string>();
        var outcomes = new List<InterleavedRounds.Outcome>();
        int checks = 0;
        // The whole process on CPU 0 (the waiter, the library's poller threads); G7 moves the interrupt.
        _ = HotPathNative.PinProcess(0);
        var thread = new Thread(() => checks = Measure(sizes, smoke, outcomes, failures), 16 << 20);
        thread.Start();
        thread.Join();

        foreach (InterleavedRounds.Outcome outcome in outcomes.Where(_ => !smoke))
        {
            Console.WriteLine(outcome.Line());
        }
        foreach (string failure in failures)
        {
            Console.WriteLine($"guest error: {failure}");
        }
        string machine = string.Create(CultureInfo.InvariantCulture,
            $"QEMU TCG guest of the testbed (pci shape), Linux {HotPathGoals.ReadFirstLine("/proc/sys/kernel/osrelease")}, {Environment.ProcessorCount} vCPUs");
        if (rowsPath is not null && !smoke)
        {
            string load = HotPathGoals.LoadAverage(HotPathGoals.ReadFirstLine("/proc/loadavg"));
            var rows = new StringBuilder();
            rows.AppendLine(CultureInfo.InvariantCulture, $"guest: {machine}; {sizes.Rounds} interleaved rounds");
            foreach (InterleavedRounds.Outcome outcome in outcomes)
            {
                rows.AppendLine(outcome.Row("guest " + load));
            }
            File.WriteAllText(rowsPath, rows.ToString());
        }
        if (xmlPath is not null)
        {
            WriteXml(xmlPath, checks, failures);
        }
        Console.WriteLine(smoke
            ? failures.Count == 0 ? $"guest smoke ok: {checks} checks, C and the library agree, 0 B per operation ({machine})" : $"guest smoke: {failures.Count} failure(s) of {checks} checks"
            : $"guest: {machine}");
        return failures.Count == 0 ? 0 : 1;
    }

    private static int Measure(Sizes sizes, bool smoke, List<InterleavedRounds.Outcome> outcomes, List<string> failures)
    {
        int checks = 0;
        void Check(bool ok, string what)
        {
            checks++;
            if (!ok)
            {
                failures.Add(what);
            }
        }

        IKernel kernel = LinuxKernel.Instance;
        using var legacy = new LegacyBackend(kernel);
        using var iommufd = new IommuFdBackend(kernel);
        using var type1Space = new DmaSpace("guest bench Type1");
        using var ioasSpace = new DmaSpace("guest bench iommufd");
        type1Space.EnsureCapacity(sizes.Pages + 16);
        ioasSpace.EnsureCapacity(16);
        using AttachedDevice edu = legacy.AttachDevice(VfioDeviceSource.Pci(Type1Edu), type1Space);
        using AttachedDevice edu2 = iommufd.AttachDevice(VfioDeviceSource.Pci(IommuFdEdu), ioasSpace);
        int container = (int)((LegacyContainer)edu.Container).Fd.DangerousGetHandle();
        uint ioas = ((IommuFdContainer)edu2.Container).IoasId;
        int iommu = OpenFdOf("/dev/iommu");
        nint small = (nint)NativeMemory.AlignedAlloc((nuint)sizes.Pages * (nuint)Page, (nuint)Page);
        nint big = (nint)NativeMemory.AlignedAlloc((nuint)Big, (nuint)Page);
        try
        {
            NativeMemory.Clear((void*)small, (nuint)sizes.Pages * (nuint)Page);
            NativeMemory.Clear((void*)big, (nuint)Big);
            var iovas = new ulong[sizes.Pages];
            int pages = sizes.Pages;

            // G1: 4 KiB map of every page (IOVA chosen by the space), then unmap of each. C maps the same pages at the
            // IOVAs the library chose in its warm-up.
            ulong libraryBytes = 0;
            double G1Library()
            {
                long start = Stopwatch.GetTimestamp();
                ulong bytes = 0;
                for (int i = 0; i < pages; i++)
                {
                    DmaMapping mapping = type1Space.Map(small + (i * (nint)Page), Page);
                    iovas[i] = mapping.Iova;
                    bytes += mapping.Size;
                }
                for (int i = 0; i < pages; i++)
                {
                    type1Space.Unmap(iovas[i]);
                }
                libraryBytes = bytes;
                return Ns(start, pages);
            }
            long cBytes = 0;
            double G1C()
            {
                long start = Stopwatch.GetTimestamp();
                fixed (ulong* p = iovas)
                {
                    cBytes = HotPathNative.Type1Pages(container, (ulong)small, p, (nuint)pages);
                }
                return Ns(start, pages);
            }
            Goal("G1", "Type1 4 KiB map + unmap through `DmaSpace` (IOVA chosen by the space), " + pages + " pages mapped then unmapped; C: the same ioctls on the same container, pages and IOVAs",
                1.10, pages, G1C, G1Library, () =>
                {
                    Check(cBytes == pages * (long)Page, $"G1 C: {cBytes} bytes unmapped for {pages} pages");
                    Check(libraryBytes == (ulong)pages * Page && type1Space.MappingCount == 0, $"G1 library: {libraryBytes} bytes mapped, {type1Space.MappingCount} left");
                });

            // G1's parts, each timed alone in rounds against the same C loop (informational lines, no goal): the
            // container's own calls (LegacyContainer's map and unmap, no DmaSpace), the bare ioctl wrapper, and the
            // space's book-keeping over a container that does nothing (what DmaSpace adds, emulated).
            DmaContainer type1Container = edu.Container;
            Part("G1 part container", "the Type1 container's MapCore + UnmapCore on the same pages and IOVAs (no DmaSpace)", pages, G1C, () =>
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < pages; i++)
                {
                    type1Container.MapCore(new DmaMapping(iovas[i], Page, small + (i * (nint)Page), DmaAccess.ReadWrite, DmaSectionKind.Ram));
                }
                for (int i = 0; i < pages; i++)
                {
                    type1Container.UnmapCore(new DmaMapping(iovas[i], Page, small + (i * (nint)Page), DmaAccess.ReadWrite, DmaSectionKind.Ram));
                }
                return Ns(start, pages);
            });
            SafeHandle containerHandle = ((LegacyContainer)edu.Container).Fd;
            Part("G1 part ioctl", "`LinuxKernel.Ioctl` with VFIO_IOMMU_MAP_DMA/UNMAP_DMA on the same pages and IOVAs (no container, no DmaSpace)", pages, G1C, () =>
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < pages; i++)
                {
                    var map = new Type1Map { Argsz = 32, Flags = 3, Vaddr = (ulong)(small + (i * (nint)Page)), Iova = iovas[i], Size = Page };
                    Check(kernel.Ioctl(containerHandle, Type1MapDma, &map) == 0, "G1 part ioctl: map failed");
                }
                for (int i = 0; i < pages; i++)
                {
                    var unmap = new Type1Unmap { Argsz = 24, Iova = iovas[i], Size = Page };
                    Check(kernel.Ioctl(containerHandle, Type1UnmapDma, &unmap) == 0 && unmap.Size == Page, "G1 part ioctl: unmap failed");
                }
                return Ns(start, pages);
            });
            using (var bookSpace = new DmaSpace("guest bench book-keeping"))
            {
                bookSpace.Join(new DmaSpaceOverheadBenchmarks.NoOpContainer(new DmaSpaceOverheadBenchmarks.NoOpBackend(), bookSpace));
                bookSpace.EnsureCapacity(pages + 16);
                var bookIovas = new ulong[pages];
                Part("G1 part space", "`DmaSpace.Map` + `Unmap` of the same pages over a container that does nothing (the space's own work)", pages, G1C, () =>
                {
                    long start = Stopwatch.GetTimestamp();
                    for (int i = 0; i < pages; i++)
                    {
                        bookIovas[i] = bookSpace.Map(small + (i * (nint)Page), Page).Iova;
                    }
                    for (int i = 0; i < pages; i++)
                    {
                        bookSpace.Unmap(bookIovas[i]);
                    }
                    return Ns(start, pages);
                });
            }

            // G2: iommufd IOAS 4 KiB map + unmap at a fixed IOVA, `count` pairs.
            int pairs = sizes.PairOps;
            Func<double> g2C = () =>
            {
                long start = Stopwatch.GetTimestamp();
                _ = HotPathNative.IoasFixed(iommu, ioas, (ulong)small, FixedIova, Page, (nuint)pairs);
                return Ns(start, pairs);
            };
            Fixed("G2", "iommufd IOAS 4 KiB map + unmap at a fixed IOVA through `DmaSpace.MapAt`; C: IOMMU_IOAS_MAP/UNMAP on the same iommufd and IOAS",
                ioasSpace, small, FixedIova, Page, pairs, () => HotPathNative.IoasFixed(iommu, ioas, (ulong)small, FixedIova, Page, (nuint)pairs));
            DmaContainer ioasContainer = edu2.Container;
            var fixedMapping = new DmaMapping(FixedIova, Page, small, DmaAccess.ReadWrite, DmaSectionKind.Ram);
            Part("G2 part container", "the iommufd container's MapCore + UnmapCore at the fixed IOVA (no DmaSpace)", pairs, g2C, () =>
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < pairs; i++)
                {
                    ioasContainer.MapCore(fixedMapping);
                    ioasContainer.UnmapCore(fixedMapping);
                }
                return Ns(start, pairs);
            });
            using (var bookSpace = new DmaSpace("guest bench book-keeping"))
            {
                bookSpace.Join(new DmaSpaceOverheadBenchmarks.NoOpContainer(new DmaSpaceOverheadBenchmarks.NoOpBackend(), bookSpace));
                Part("G2 part space", "`DmaSpace.MapAt` + `Unmap` at the fixed IOVA over a container that does nothing (the space's own work)", pairs, g2C, () =>
                {
                    long start = Stopwatch.GetTimestamp();
                    for (int i = 0; i < pairs; i++)
                    {
                        _ = bookSpace.MapAt(FixedIova, small, Page);
                        bookSpace.Unmap(FixedIova);
                    }
                    return Ns(start, pairs);
                });
            }
            // G3: one 64 MiB map + unmap, each backend.
            int bigOps = sizes.BigOps;
            Fixed("G3 Type1", "one 64 MiB map + unmap at a fixed IOVA through `DmaSpace.MapAt`, Type1 container; C: the same ioctls",
                type1Space, big, BigIova, Big, bigOps, () => HotPathNative.Type1Fixed(container, (ulong)big, BigIova, Big, (nuint)bigOps));
            Fixed("G3 iommufd", "one 64 MiB map + unmap at a fixed IOVA through `DmaSpace.MapAt`, iommufd IOAS; C: the same ioctls",
                ioasSpace, big, BigIova, Big, bigOps, () => HotPathNative.IoasFixed(iommu, ioas, (ulong)big, BigIova, Big, (nuint)bigOps));

            // G6: pread of 4 B of edu's identification register (BAR0 offset 0) on the device fd. Its parts run as
            // informational rows next to it, each against the same C loop in its own rounds: the kernel port's pread
            // alone (SafeHandle reference, EINTR loop, errno) and the bare LibraryImport on the raw fd (the transition).
            VfioDevice device = edu.Device;
            long bar0Offset = (long)device.GetRegion(Bar0).Offset;
            int deviceFd = (int)device.Handle.DangerousGetHandle();
            Microsoft.Win32.SafeHandles.SafeFileHandle deviceHandle = device.Handle;
            int preads = sizes.PreadOps;
            uint cValue = 0, libraryValue = 0;
            long cRead = 0, libraryRead = 0;
            double G6C()
            {
                long start = Stopwatch.GetTimestamp();
                uint value;
                cRead = HotPathNative.PRead32Loop(deviceFd, bar0Offset, (nuint)preads, &value);
                cValue = value;
                return Ns(start, preads);
            }
            double G6Library()
            {
                long start = Stopwatch.GetTimestamp();
                uint value = 0;
                for (int i = 0; i < preads; i++)
                {
                    value = device.ReadRegion32(Bar0, 0);
                }
                libraryValue = value;
                libraryRead = 4L * preads;
                return Ns(start, preads);
            }
            double G6Port()
            {
                long start = Stopwatch.GetTimestamp();
                uint value = 0;
                var buffer = new Span<byte>(&value, sizeof(uint));
                long bytes = 0;
                for (int i = 0; i < preads; i++)
                {
                    bytes += kernel.PRead(deviceHandle, buffer, bar0Offset);
                }
                libraryValue = value;
                libraryRead = bytes;
                return Ns(start, preads);
            }
            double G6Bare()
            {
                long start = Stopwatch.GetTimestamp();
                uint value = 0;
                long bytes = 0;
                for (int i = 0; i < preads; i++)
                {
                    bytes += BareLibc.PRead(deviceFd, (byte*)&value, sizeof(uint), bar0Offset);
                }
                libraryValue = value;
                libraryRead = bytes;
                return Ns(start, preads);
            }
            void G6Verify()
            {
                Check(cRead == 4L * preads && libraryRead == 4L * preads, $"G6: C read {cRead} bytes, the library {libraryRead}, {4L * preads} expected");
                Check(cValue == libraryValue && cValue == 0x010000edu, $"G6: C read 0x{cValue:x8}, the library 0x{libraryValue:x8} (edu's identification is 0x010000ed)");
            }
            if (Selected("G6") && !smoke)
            {
                SettleTiering(G6Library, G6Port, G6Bare);
            }
            Goal("G6", "pread of 4 B of an edu register (identification, BAR0 + 0), `VfioDevice.ReadRegion32` vs C's pread on the same device fd",
                1.10, preads, G6C, G6Library, G6Verify);
            Goal("G6 part port", "informational part of G6: `LinuxKernel.PRead` alone (through `IKernel`, on the device's SafeHandle) vs C's pread",
                1.10, preads, G6C, G6Port, G6Verify);
            Goal("G6 part bare", "informational part of G6: the bare LibraryImport `pread64` on the raw fd (no SafeHandle, no errno) vs C's pread",
                1.10, preads, G6C, G6Bare, G6Verify);

            // G7: the MSI round trip (edu raise → MSI → eventfd; ack), the interrupt pinned to the waiter's CPU (0) and
            // to the other (1).
            using var trip = new EduMsiRoundTrip(device);
            int irq = trip.IrqNumber();
            Check(irq > 0, $"G7: no vfio-msi line of {Type1Edu} in /proc/interrupts");
            foreach ((int cpu, string where) in new[] { (0, "interrupt on the waiter's CPU"), (1, "interrupt on the other CPU") })
            {
                if (cpu >= Environment.ProcessorCount || !Selected("G7"))
                {
                    continue;
                }
                string pinned = irq > 0 ? PinIrq(irq, cpu) : "no IRQ number";
                Check(pinned.Length == 0, $"G7: pinning IRQ {irq} to CPU {cpu}: {pinned}");
                string suffix = cpu == 0 ? " same-CPU" : "";
                var g7 = new List<InterleavedRounds.Outcome>();
                InterruptGoals.Measure(trip, "G7 sync" + suffix, false, where, "edu MSI round trip (raise register → MSI → eventfd, then ack), `InterruptEvent.Wait` vs C's poll + read",
                    sizes.Rounds, sizes.IrqOps, smoke: false, g7, failures);
                InterruptGoals.Measure(trip, "G7 async" + suffix, true, where, "edu MSI round trip, `InterruptEvent.WaitAsync` vs C's poll + read",
                    sizes.Rounds, sizes.IrqOps, smoke: false, g7, failures);
                if (!smoke && Environment.GetEnvironmentVariable("VFIO_BENCH_G7_PARTS") is not null)
                {
                    Console.WriteLine(trip.Parts(sizes.Rounds, sizes.IrqOps, where));
                }
                checks += 4 * sizes.Rounds;   // every round of each side counted one interrupt per raise
                foreach (InterleavedRounds.Outcome outcome in g7)
                {
                    checks++;
                    if (smoke && outcome.LibraryBytes != 0)
                    {
                        failures.Add($"{outcome.Goal}: {outcome.LibraryBytes} B allocated per wait");
                    }
                }
                outcomes.AddRange(g7);
            }
        }
        finally
        {
            NativeMemory.AlignedFree((void*)small);
            NativeMemory.AlignedFree((void*)big);
        }
        return checks;

        // One goal in interleaved rounds after a warm-up of each side; `verify` checks what the last blocks computed.
        void Goal(string name, string what, double maxRatio, int ops, Func<double> c, Func<double> library, Action verify)
        {
            if (!Selected(name))
            {
                return;
            }
            // The library first: C reuses what it chose (G1's IOVAs).
            _ = library();
            _ = c();
            // Under TCG tiered compilation takes seconds to replace tier-0 code: time the library only once the JIT
            // has stopped compiling (a smoke pass times nothing and runs one block more).
            if (smoke)
            {
                _ = library();
            }
            else
            {
                SettleTiering(library);
            }
            verify();
            long bytes = long.MaxValue;
            (double[] cs, double[] ls) = InterleavedRounds.Run(sizes.Rounds, () =>
            {
                double ns = c();
                verify();
                return ns;
            }, () =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                double ns = library();
                bytes = Math.Min(bytes, GC.GetAllocatedBytesForCurrentThread() - before);
                verify();
                return ns;
            });
            long perOp = (bytes + ops - 1) / ops;
            Check(perOp == 0, $"{name}: the library allocated {bytes} B in its least block of {ops} operations");
            (double ratio, double low, double high) = InterleavedRounds.Ratio(cs, ls);
            outcomes.Add(new(name, InterleavedRounds.Median(cs), InterleavedRounds.Median(ls), ratio, low, high, maxRatio, perOp, what));
        }

        // One part of a goal (G1, G2) timed alone in rounds against the goal's C loop: an informational line on stdout,
        // no goal, no row (the doc's hand-written section reads them). Selected by the goal's name ("G1", "G2").
        void Part(string name, string what, int ops, Func<double> c, Func<double> part)
        {
            if (!Selected(name) || smoke)
            {
                return;
            }
            _ = part();
            _ = c();
            (double[] cs, double[] ls) = InterleavedRounds.Run(sizes.Rounds, c, part);
            (double ratio, double low, double high) = InterleavedRounds.Ratio(cs, ls);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name.Replace(' ', '-')} ratio={ratio:0.00} (C {InterleavedRounds.Median(cs):0.#} ns, part {InterleavedRounds.Median(ls):0.#} ns per op, interval {low:0.00}–{high:0.00}; {what}; no goal)"));
        }

        // Map + unmap pairs at a fixed IOVA through the space against C's loop.
        void Fixed(string name, string what, DmaSpace space, nint memory, ulong iova, ulong size, int count, Func<long> c)
        {
            long cUnmapped = 0;
            ulong libraryMapped = 0;
            Goal(name, what, 1.10, count, () =>
            {
                long start = Stopwatch.GetTimestamp();
                cUnmapped = c();
                return Ns(start, count);
            }, () =>
            {
                long start = Stopwatch.GetTimestamp();
                ulong bytes = 0;
                for (int i = 0; i < count; i++)
                {
                    bytes += space.MapAt(iova, memory, size).Size;
                    space.Unmap(iova);
                }
                libraryMapped = bytes;
                return Ns(start, count);
            }, () =>
            {
                Check(cUnmapped == count * (long)size, $"{name} C: {cUnmapped} bytes unmapped, {count * (long)size} expected");
                Check(libraryMapped == (ulong)count * size && space.MappingCount == 0, $"{name} library: {libraryMapped} bytes mapped, {space.MappingCount} left");
            });
        }
    }

    /// <summary>Runs the library's loops until the JIT has no more methods to compile (tiered compilation moves hot
    /// methods to optimised code in the background, after a quiet period; under TCG that takes seconds), so the rounds
    /// time optimised code on both sides: C is compiled ahead.</summary>
    internal static void SettleTiering(params Func<double>[] loops)
    {
        long last = -1;
        for (int i = 0; i < 40; i++)
        {
            foreach (Func<double> loop in loops)
            {
                _ = loop();
            }
            Thread.Sleep(300);
            long now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now == last)
            {
                return;
            }
            last = now;
        }
    }

    /// <summary>Whether goal <paramref name="name"/> runs: all of them, or those whose names start with one of the
    /// comma-separated prefixes in VFIO_BENCH_GOALS (e.g. "G6,G7" while working on one path).</summary>
    private static bool Selected(string name)
    {
        string? only = Environment.GetEnvironmentVariable("VFIO_BENCH_GOALS");
        return string.IsNullOrWhiteSpace(only)
            || only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Any(p => name.StartsWith(p, StringComparison.OrdinalIgnoreCase));
    }

    private static double Ns(long start, int ops) => (Stopwatch.GetTimestamp() - start) * (1e9 / Stopwatch.Frequency) / ops;

    /// <summary>The fd number this process has open on <paramref name="path"/> (the backend's own /dev/iommu).</summary>
    private static int OpenFdOf(string path)
    {
        foreach (string fd in Directory.GetFiles("/proc/self/fd"))
        {
            if (new FileInfo(fd).LinkTarget == path)
            {
                return int.Parse(Path.GetFileName(fd), CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"This process has no fd open on {path}: the iommufd backend did not attach {IommuFdEdu}.");
    }

    /// <summary>Routes IRQ <paramref name="irq"/> to <paramref name="cpu"/>; returns "" or what failed.</summary>
    private static string PinIrq(int irq, int cpu)
    {
        try
        {
            File.WriteAllText($"/proc/irq/{irq}/smp_affinity", (1 << cpu).ToString("x", CultureInfo.InvariantCulture));
            string effective = HotPathGoals.ReadFirstLine($"/proc/irq/{irq}/effective_affinity");
            return int.Parse(effective, NumberStyles.HexNumber, CultureInfo.InvariantCulture) == 1 << cpu ? "" : $"effective affinity {effective}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SecurityException or FormatException)
        {
            return e.Message;
        }
    }

    private static void WriteXml(string path, int checks, List<string> failures)
    {
        var xml = new StringBuilder();
        xml.AppendLine(CultureInfo.InvariantCulture,
            $"<assemblies><assembly name=\"Vfio.Benchmarks (guest smoke)\" total=\"{checks}\" passed=\"{checks - failures.Count}\" failed=\"{failures.Count}\" skipped=\"0\" errors=\"0\">");
        foreach (string failure in failures)
        {
            xml.AppendLine(CultureInfo.InvariantCulture, $"<test name=\"{SecurityElement.Escape(failure)}\" result=\"Fail\" />");
        }
        xml.AppendLine("</assembly></assemblies>");
        File.WriteAllText(path, xml.ToString());
    }
}

/// <summary>G7: an edu device's MSI round trip. C writes the raise register through the same BAR mapping and waits
/// on the same eventfd with poll + read; the library writes through <see cref="VfioRegionMapping"/> and waits with
/// <see cref="InterruptEvent"/>. Both acknowledge the interrupt at the device before the next raise.</summary>
internal sealed class EduMsiRoundTrip : IRoundTrip
{
    private const int MsiIndex = 1;
    private const ulong Raise = 0x60;
    private const ulong Ack = 0x64;
    private readonly VfioDevice _device;
    private readonly VfioRegionMapping _bar0;
    private readonly InterruptEvent _msi = new();
    private readonly nint _bar;

    internal EduMsiRoundTrip(VfioDevice device)
    {
        _device = device;
        _bar0 = device.MapRegion(0);
        _bar = _bar0.Areas[0].Mapping.DangerousGetHandle();
        // Bus Master Enable (an MSI is a memory write by the device), then the eventfd on MSI vector 0.
        device.WriteRegion16(7, 4, (ushort)(device.ReadRegion16(7, 4) | 0x4));
        device.SetIrqEventFds(MsiIndex, 0, [_msi]);
    }

    /// <summary>The Linux IRQ number of the device's MSI vector, from /proc/interrupts (0 when not found).</summary>
    internal int IrqNumber()
    {
        foreach (string line in File.ReadLines("/proc/interrupts"))
        {
            if (line.Contains($"vfio-msi[0]({_device.Name})", StringComparison.Ordinal))
            {
                return int.Parse(line[..line.IndexOf(':', StringComparison.Ordinal)].Trim(), CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }

    public unsafe long C(long[] ns)
    {
        fixed (long* p = ns)
        {
            return HotPathNative.MsiRoundTripLoop((byte*)_bar, (nuint)Raise, (nuint)Ack, (int)_msi.Handle.DangerousGetHandle(), (nuint)ns.Length, p);
        }
    }

    public long Sync(long[] ns)
    {
        long total = 0;
        for (int i = 0; i < ns.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            _bar0.Write32(Raise, 1);
            total += (long)_msi.Wait();
            _bar0.Write32(Ack, 1);
            ns[i] = Stopwatch.GetTimestamp() - start;
        }
        InterruptRoundTrip.ToNs(ns);
        return total;
    }

    /// <summary>VFIO_BENCH_G7_PARTS (a decomposition, not a goal): per-round medians, in rounds, of C's round trip, the
    /// library's, the library's wait with raw volatile stores for raise and ack instead of <see cref="VfioRegionMapping.Write32"/>,
    /// and one acknowledge write of 0 (no bit cleared) through each.</summary>
    internal unsafe string Parts(int rounds, int ops, string where)
    {
        var ns = new long[ops];
        double[] c = new double[rounds], library = new double[rounds], raw = new double[rounds], write = new double[rounds], store = new double[rounds];
        uint* raise = (uint*)(_bar + (nint)Raise), ack = (uint*)(_bar + (nint)Ack);
        for (int round = 0; round < rounds; round++)
        {
            _ = C(ns);
            c[round] = InterleavedRounds.Median(Array.ConvertAll(ns, v => (double)v));
            _ = Sync(ns);
            library[round] = InterleavedRounds.Median(Array.ConvertAll(ns, v => (double)v));
            for (int i = 0; i < ns.Length; i++)
            {
                long start = Stopwatch.GetTimestamp();
                Volatile.Write(ref *raise, 1);
                _ = _msi.Wait();
                Volatile.Write(ref *ack, 1);
                ns[i] = Stopwatch.GetTimestamp() - start;
            }
            InterruptRoundTrip.ToNs(ns);
            raw[round] = InterleavedRounds.Median(Array.ConvertAll(ns, v => (double)v));
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < ops; i++)
            {
                _bar0.Write32(Ack, 0);
            }
            long t1 = Stopwatch.GetTimestamp();
            for (int i = 0; i < ops; i++)
            {
                Volatile.Write(ref *ack, 0);
            }
            long t2 = Stopwatch.GetTimestamp();
            write[round] = (t1 - t0) * (1e9 / Stopwatch.Frequency) / ops;
            store[round] = (t2 - t1) * (1e9 / Stopwatch.Frequency) / ops;
        }
        return string.Create(CultureInfo.InvariantCulture,
            $"G7 parts, {where}, medians of {rounds} rounds: C {InterleavedRounds.Median(c):F0} ns, library {InterleavedRounds.Median(library):F0} ns, library wait with raw stores {InterleavedRounds.Median(raw):F0} ns; one ack write: Write32 {InterleavedRounds.Median(write):F0} ns, raw store {InterleavedRounds.Median(store):F0} ns");
    }

    public async Task<long> Async(long[] ns)
    {
        long total = 0;
        for (int i = 0; i < ns.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            _bar0.Write32(Raise, 1);
            total += (long)await _msi.WaitAsync().ConfigureAwait(false);
            _bar0.Write32(Ack, 1);
            ns[i] = Stopwatch.GetTimestamp() - start;
        }
        InterruptRoundTrip.ToNs(ns);
        return total;
    }

    public void Dispose()
    {
        _device.DisableIrq(MsiIndex);
        _msi.Dispose();
        _bar0.Dispose();
    }
}
