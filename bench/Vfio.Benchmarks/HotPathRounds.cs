// SPDX-License-Identifier: MIT
using System.Diagnostics;

namespace Vfio.Benchmarks;

/// <summary>
/// H1 and H2 measured side by side: C and the library in interleaved rounds (ABBA, <see cref="InterleavedRounds"/>)
/// on the same page, fds and buffers as <see cref="HotPathBenchmarks"/>, so both see the same load, which on a shared
/// machine spreads separate BenchmarkDotNet runs far wider than the 5% the goals allow. Informational lines
/// (<c>--hotpath-rounds [--quick]</c>); the documented verdicts stay BenchmarkDotNet's.
/// </summary>
internal static class HotPathRounds
{
    private sealed record Pair(string Goal, string What, Func<HotPathBenchmarks, long> C, Func<HotPathBenchmarks, long> Library, int OpsPerCall);

    private static readonly Pair[] s_pairs =
    [
        new("H1 read rounds", "`MmioWindow.Read32` vs C", b => b.C_Read32(), b => b.Window_Read32(), HotPathBenchmarks.MmioOps),
        new("H1 read rounds raw", "a C# pointer loop vs C (what the JIT gives without any check)", b => b.C_Read32(), b => b.Raw_Read32(), HotPathBenchmarks.MmioOps),
        new("H1 write rounds", "`MmioWindow.Write32` vs C", b => { b.C_Write32(); return 0; }, b => { b.Window_Write32(); return 0; }, HotPathBenchmarks.MmioOps),
        new("H2 pread rounds", "`LinuxKernel.PRead` vs C", b => b.C_PRead(), b => b.Kernel_PRead(), HotPathBenchmarks.SyscallOps),
        new("H2 pread rounds bare", "the bare import on the raw fd vs C", b => b.C_PRead(), b => b.Bare_PRead(), HotPathBenchmarks.SyscallOps),
        new("H2 ioctl rounds", "`LinuxKernel.Ioctl` vs C", b => b.C_Ioctl(), b => b.Kernel_Ioctl(), HotPathBenchmarks.SyscallOps),
        new("H2 ioctl rounds bare", "the bare import on the raw fd vs C", b => b.C_Ioctl(), b => b.Bare_Ioctl(), HotPathBenchmarks.SyscallOps),
        new("H2 eventfd rounds", "`InterruptEvent.Signal` + `TryWait` vs C", b => b.C_EventFd(), b => b.Library_EventFd(), HotPathBenchmarks.SyscallOps),
    ];

    /// <summary>Prints one line per pair with the load average; returns the exit code.</summary>
    internal static int Run(bool quick)
    {
        int rounds = quick ? 9 : 21;
        double blockMs = quick ? 20 : 50;
        using var b = new HotPathBenchmarks();
        b.Setup();
        foreach (Pair pair in s_pairs)
        {
            // Warm up both sides until tiered compilation has moved them to optimised code, and size a block.
            int calls = 1;
            for (int i = 0; i < 200; i++)
            {
                _ = pair.C(b);
                _ = pair.Library(b);
            }
            Thread.Sleep(200);
            while (Block(b, pair.C, calls) < blockMs * 1e6 && calls < 1 << 20)
            {
                calls *= 2;
            }
            (double[] cs, double[] ls) = InterleavedRounds.Run(rounds,
                () => Block(b, pair.C, calls) / ((double)calls * pair.OpsPerCall),
                () => Block(b, pair.Library, calls) / ((double)calls * pair.OpsPerCall));
            (double ratio, double low, double high) = InterleavedRounds.Ratio(cs, ls);
            double c = InterleavedRounds.Median(cs), library = InterleavedRounds.Median(ls);
            Console.WriteLine(FormattableString.Invariant(
                $"{pair.Goal.Replace(' ', '-')} ratio={ratio:0.000} (C {c:0.###} ns, library {library:0.###} ns, +{library - c:0.###} ns, interval {low:0.000}–{high:0.000}, {rounds} rounds) {pair.What}; load {HotPathGoals.LoadAverage(HotPathGoals.ReadFirstLine("/proc/loadavg"))}"));
        }
        return 0;
    }

    // Nanoseconds for `calls` calls of one side.
    private static double Block(HotPathBenchmarks b, Func<HotPathBenchmarks, long> side, int calls)
    {
        long start = Stopwatch.GetTimestamp();
        long sink = 0;
        for (int i = 0; i < calls; i++)
        {
            sink += side(b);
        }
        GC.KeepAlive(sink);
        return (Stopwatch.GetTimestamp() - start) * (1e9 / Stopwatch.Frequency);
    }
}
