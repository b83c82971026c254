// SPDX-License-Identifier: MIT
using System.Diagnostics;

namespace Vfio.Benchmarks;

/// <summary>Runs one benchmark method in a plain loop for a while and prints ns per operation: a steady target for a
/// profiler (perf) and a quick check while iterating, without BenchmarkDotNet's machinery.</summary>
internal static partial class ProfileLoop
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out Timespec time);

    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>This thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a loaded machine, the time it actually ran.</summary>
    internal static long ThreadCpuNs()
    {
        _ = ClockGetTime(3, out Timespec t);
        return (t.Seconds * 1_000_000_000) + t.Nanoseconds;
    }

    internal static int Run(string name, double seconds)
    {
        var h3 = new DmaSpaceOverheadBenchmarks();
        h3.Setup();
        int ops = DmaSpaceOverheadBenchmarks.Pairs;
        var h5 = new IovaAllocatorBenchmarks { LiveRanges = name.StartsWith("h5-", StringComparison.Ordinal) ? int.Parse(name[(name.LastIndexOf('-') + 1)..], System.Globalization.CultureInfo.InvariantCulture) : 16 };
        h5.Setup();
        var iovas = new Vfio.Core.IovaAllocator([new Vfio.Core.IovaRange(0, (1UL << 48) - 1)]);
        var book = new Dictionary<ulong, Vfio.Core.DmaMapping>();
        var gate = new Lock();
        const int G1Pages = 4096;
        var g1Iovas = new ulong[G1Pages];
        h3.Space.EnsureCapacity(G1Pages);
        if (name == "g1-space")
        {
            ops = G1Pages;
        }
        Func<long> body = name switch
        {
            _ when name.StartsWith("h5-lookup-", StringComparison.Ordinal) => () =>
            {
                long found = 0;
                for (int i = 0; i < ops; i++)
                {
                    found += h5.TryFind() ? 1 : 0;
                }
                return found;
            },
            _ when name.StartsWith("h5-allocate-", StringComparison.Ordinal) => () =>
            {
                long sum = 0;
                for (int i = 0; i < ops; i++)
                {
                    sum += (long)h5.AllocateFreePage();
                }
                return sum;
            },
            "iova" => () =>
            {
                long sum = 0;
                for (int i = 0; i < ops; i++)
                {
                    iovas.TryAllocate(4096, 0, ulong.MaxValue, out ulong iova);
                    iovas.Free(iova);
                    sum += (long)iova;
                }
                return sum;
            },
            "dict" => () =>
            {
                long sum = 0;
                for (int i = 0; i < ops; i++)
                {
                    book.Add(0x1000, default);
                    book.TryGetValue(0x1000, out Vfio.Core.DmaMapping m);
                    book.Remove(0x1000);
                    sum += (long)m.Size;
                }
                return sum;
            },
            "lock" => () =>
            {
                long sum = 0;
                for (int i = 0; i < ops; i++)
                {
                    lock (gate)
                    {
                        sum++;
                    }
                    lock (gate)
                    {
                        sum++;
                    }
                }
                return sum;
            },
            // G1's pattern on the host: 4096 pages mapped (IOVAs chosen by the space), then unmapped in the same order.
            "g1-space" => () =>
            {
                long sum = 0;
                for (int i = 0; i < G1Pages; i++)
                {
                    g1Iovas[i] = h3.Space.Map(0x10_0000 + (i * 4096), 4096).Iova;
                }
                for (int i = 0; i < G1Pages; i++)
                {
                    h3.Space.Unmap(g1Iovas[i]);
                    sum += (long)g1Iovas[i];
                }
                return sum;
            },
            "h3" => () => (long)h3.Space_MapUnmap(),
            "h3-at" => () => (long)h3.Space_MapAtUnmap(),
            "h3-container" => () => h3.Container_MapUnmap(),
            _ => throw new ArgumentException($"unknown loop '{name}' (h3, h3-at, h3-container, g1-space, iova, dict, lock, h5-lookup-N, h5-allocate-N)"),
        };
        long count = 0;
        long cpu = ThreadCpuNs();
        var watch = Stopwatch.StartNew();
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        while (watch.Elapsed.TotalSeconds < seconds)
        {
            body();
            count++;
        }
        bytes = GC.GetAllocatedBytesForCurrentThread() - bytes;
        cpu = ThreadCpuNs() - cpu;
        Console.WriteLine($"{name}: {watch.Elapsed.TotalNanoseconds / (count * ops):0.0} ns/op wall, {cpu / (double)(count * ops):0.0} ns/op on the CPU, {bytes / (double)(count * ops):0.00} B/op");
        h3.Dispose();
        return 0;
    }
}
