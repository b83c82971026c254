// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Environments;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Vfio.Benchmarks;

/// <summary>
/// bench.sh's driver: runs <see cref="HotPathBenchmarks"/>, prints one verdict line per goal and (full mode) rewrites
/// docs/performance.md; <c>--smoke</c> only checks that C and the library compute the same results (no timing).
/// </summary>
internal static class HotPathGoals
{
    private sealed record Goal(string Name, string CMethod, string LibraryMethod, double MaxRatio, double MaxExtraNs, string What);

    private static readonly Goal[] s_goals =
    [
        new("H1 read", nameof(HotPathBenchmarks.C_Read32), nameof(HotPathBenchmarks.Window_Read32), 1.05, 0.3,
            "32-bit MMIO read, anonymous page, `MmioWindow.Read32` vs a C volatile loop"),
        new("H1 write", nameof(HotPathBenchmarks.C_Write32), nameof(HotPathBenchmarks.Window_Write32), 1.05, 0.3,
            "32-bit MMIO write, anonymous page, `MmioWindow.Write32` vs a C volatile loop"),
        new("H2 pread", nameof(HotPathBenchmarks.C_PRead), nameof(HotPathBenchmarks.Kernel_PRead), 1.05, 0,
            "pread 4 B of /dev/zero, `LinuxKernel.PRead` vs C"),
        new("H2 ioctl", nameof(HotPathBenchmarks.C_Ioctl), nameof(HotPathBenchmarks.Kernel_Ioctl), 1.05, 0,
            "ioctl failing with ENOTTY on an eventfd, `LinuxKernel.Ioctl` vs C"),
        new("H2 eventfd", nameof(HotPathBenchmarks.C_EventFd), nameof(HotPathBenchmarks.Library_EventFd), 1.05, 0,
            "eventfd write 1 + read, `InterruptEvent.Signal` + `TryWait` vs C"),
    ];

    /// <summary>Runs the C baselines and the library once each and compares what they computed. Returns the exit code.</summary>
    internal static unsafe int Smoke()
    {
        var failures = new List<string>();
        using var b = new HotPathBenchmarks();
        b.Setup();
        Check(failures, "H1 read: window", b.C_Read32(), b.Window_Read32());
        Check(failures, "H1 read: accessor", b.C_Read32(), b.Accessor_Read32());
        Check(failures, "H1 read: raw", b.C_Read32(), b.Raw_Read32());
        b.C_Write32();
        uint afterC = b.Raw_Read32();
        b.Page.Clear();
        b.Window_Write32();
        Check(failures, "H1 write: window", afterC, b.Raw_Read32());
        b.Page.Clear();
        b.Accessor_Write32();
        Check(failures, "H1 write: accessor", afterC, b.Raw_Read32());
        Check(failures, "H2 pread", b.C_PRead(), b.Kernel_PRead());
        Check(failures, "H2 pread (count)", 4L * HotPathBenchmarks.SyscallOps, b.C_PRead());
        Check(failures, "H2 ioctl", b.C_Ioctl(), b.Kernel_Ioctl());
        Check(failures, "H2 ioctl (count)", HotPathBenchmarks.SyscallOps, b.C_Ioctl());
        Check(failures, "H2 eventfd", b.C_EventFd(), b.Library_EventFd());
        Check(failures, "H2 eventfd (count)", HotPathBenchmarks.SyscallOps, b.C_EventFd());

        using (var overhead = new WrapperOverheadBenchmarks())
        {
            overhead.Setup();
            int expected = -(int)Vfio.Core.Errno.ENOTTY * 256;
            Check(failures, "H2 overhead: former kernel-port shape", expected, overhead.KernelPortShape());
            Check(failures, "H2 overhead: kernel-port shape", expected, overhead.KernelPortRawShape());
            Check(failures, "H2 overhead: errno read", expected, overhead.IntFdReadErrno());
            Check(failures, "H2 overhead: SetLastError", expected, overhead.IntFdSetLastError());
            Check(failures, "H2 overhead: SafeHandle + SetLastError", expected, overhead.SafeHandleSetLastError());
            Check(failures, "H2 overhead: bare", -256, overhead.IntFd());
            Check(failures, "H2 overhead: SafeHandle", -256, overhead.SafeHandleFd());
        }

        // 0 bytes per operation on the library's hot paths (warmed up first; an allocation count, not a timing).
        CheckNoAllocation(failures, "H1 read", () => b.Window_Read32());
        CheckNoAllocation(failures, "H1 write", b.Window_Write32);
        CheckNoAllocation(failures, "H2 pread", () => b.Kernel_PRead());
        CheckNoAllocation(failures, "H2 ioctl", () => b.Kernel_Ioctl());
        CheckNoAllocation(failures, "H2 eventfd", () => b.Library_EventFd());
        // H3: the space maps through its container (two calls per pair) and allocates nothing.
        using (var h3 = new DmaSpaceOverheadBenchmarks())
        {
            h3.Setup();
            _ = h3.Space_MapUnmap();
            Check(failures, "H3 container calls", 2 * DmaSpaceOverheadBenchmarks.Pairs, h3.Container_MapUnmap() - (2 * DmaSpaceOverheadBenchmarks.Pairs));
            CheckNoAllocation(failures, "H3 DmaSpace map+unmap", () => h3.Space_MapUnmap());
        }
        // H5: both sizes find what they look up and allocate nothing.
        foreach (int live in new[] { 16, 65536 })
        {
            var h5 = new IovaAllocatorBenchmarks { LiveRanges = live };
            h5.Setup();
            Check(failures, $"H5 lookup ({live} ranges)", true, h5.TryFind());
            CheckNoAllocation(failures, $"H5 allocate+free ({live} ranges)", () => h5.AllocateFreePage());
            CheckNoAllocation(failures, $"H5 lookup ({live} ranges)", () => h5.TryFind());
        }
        // H4: the interrupt round trip runs in C and through the library; every doorbell gets exactly one interrupt.
        _ = InterruptGoals.Run(quick: false, smoke: true, failures);

        foreach (string failure in failures)
        {
            Console.WriteLine($"smoke: {failure}");
        }
        Console.WriteLine(failures.Count == 0 ? "smoke ok: C and the library agree on every result, 0 B per operation" : $"smoke: {failures.Count} failure(s)");
        return failures.Count == 0 ? 0 : 1;
    }

    private static void Check<T>(List<string> failures, string what, T expected, T actual)
        where T : IEquatable<T>
    {
        if (!expected.Equals(actual))
        {
            failures.Add($"{what}: C gave {expected}, the library {actual}");
        }
    }

    private static void CheckNoAllocation(List<string> failures, string what, Action action)
    {
        for (int i = 0; i < 50; i++)
        {
            action();
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated != 0)
        {
            failures.Add($"{what}: {allocated} bytes allocated");
        }
    }

    /// <summary>Runs the benchmarks and reports the goals. Returns the exit code (0 even when a goal is missed: a
    /// benchmark reports, it does not gate).</summary>
    internal static int Run(bool quick, string? docsPath, string? guestRowsPath, string artifactsPath)
    {
        Job job = quick
            ? Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3)
                .WithIterationCount(7).WithIterationTime(TimeInterval.FromMilliseconds(150)).WithId("Quick")
            // In process (a child process per benchmark would multiply the run time on this loaded 2-CPU machine); the
            // JIT's own listing gives H1's machine code (bench.sh sets DOTNET_JitDisasm).
            : Job.Default.WithRuntime(CoreRuntime.Core10_0).WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1)
                .WithWarmupCount(5).WithIterationCount(15).WithIterationTime(TimeInterval.FromMilliseconds(250)).WithId("Full");
        IConfig config = DefaultConfig.Instance.AddJob(job).WithArtifactsPath(artifactsPath);
        string load = ReadFirstLine("/proc/loadavg");
        Summary summary = BenchmarkRunner.Run<HotPathBenchmarks>(config);
        Summary overhead = BenchmarkRunner.Run<WrapperOverheadBenchmarks>(config);

        var rows = new List<string>();
        bool complete = true;
        foreach (Goal goal in s_goals)
        {
            BenchmarkReport? c = Find(summary, goal.CMethod);
            BenchmarkReport? library = Find(summary, goal.LibraryMethod);
            if (c?.ResultStatistics is null || library?.ResultStatistics is null)
            {
                Console.WriteLine($"{goal.Name.Replace(' ', '-')} no result (a benchmark failed; see the log above)");
                complete = false;
                continue;
            }
            double cNs = c.ResultStatistics.Median, libNs = library.ResultStatistics.Median;
            double ratio = libNs / cNs;
            var cCi = c.ResultStatistics.ConfidenceInterval;
            var lCi = library.ResultStatistics.ConfidenceInterval;
            double low = lCi.Lower / cCi.Upper, high = lCi.Upper / Math.Max(cCi.Lower, double.Epsilon);
            long bytes = library.GcStats.GetBytesAllocatedPerOperation(library.BenchmarkCase) ?? -1;
            bool ok = (ratio <= goal.MaxRatio || libNs - cNs <= goal.MaxExtraNs) && bytes == 0;
            string verdict = InterleavedRounds.Verdict(ok, low <= goal.MaxRatio || lCi.Lower - cCi.Upper <= goal.MaxExtraNs, bytes);
            string goalText = goal.MaxExtraNs > 0 ? $"<={goal.MaxRatio:0.00}|+{goal.MaxExtraNs:0.0}ns" : $"<={goal.MaxRatio:0.00}";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{goal.Name.Replace(' ', '-')} ratio={ratio:0.00} goal{goalText} {verdict} (C {cNs:0.###} ns, library {libNs:0.###} ns, {bytes} B/op)"));
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {goal.Name}: {goal.What} | {cNs:0.###} ns | {libNs:0.###} ns | {ratio:0.00} | {low:0.00}–{high:0.00} | {verdict} (goal {goalText.Replace("|", " or ", StringComparison.Ordinal)}, {bytes} B/op) | {LoadAverage(load)} |"));
        }
        var failures = new List<string>();
        string interruptLoad = ReadFirstLine("/proc/loadavg");
        foreach (InterleavedRounds.Outcome outcome in InterruptGoals.Run(quick, smoke: false, failures))
        {
            Console.WriteLine(outcome.Line());
            rows.Add(outcome.Row(LoadAverage(interruptLoad)));
        }
        foreach (string failure in failures)
        {
            Console.WriteLine($"H4 error: {failure}");
            complete = false;
        }
        foreach (CpuTimeGoals.Result result in CpuTimeGoals.Run(quick, LoadAverage(ReadFirstLine("/proc/loadavg"))))
        {
            Console.WriteLine(result.Line);
            rows.Add(result.Row);
        }
        foreach (BenchmarkReport report in overhead.Reports.Where(r => r.ResultStatistics is not null))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"H2-overhead {report.BenchmarkCase.Descriptor.WorkloadMethod.Name} {report.ResultStatistics!.Median:0.##} ns"));
        }
        if (docsPath is not null && !complete)
        {
            Console.WriteLine($"not writing {docsPath}: a goal has no result");
            return 1;
        }
        // The guest's rows (GuestGoals, run by bench.sh in the testbed before this): the first line names the guest.
        string? guest = null;
        if (guestRowsPath is not null)
        {
            string[] lines = File.ReadAllLines(guestRowsPath);
            guest = lines[0]["guest: ".Length..];
            rows.AddRange(lines.Skip(1));
        }
        else if (docsPath is not null)
        {
            Console.WriteLine("the guest goals have no rows (the guest run failed); docs list them as not measured");
        }
        if (docsPath is not null)
        {
            File.WriteAllText(docsPath, Document(summary, overhead, rows, load, guest, artifactsPath));
            Console.WriteLine($"wrote {docsPath}");
        }
        return 0;
    }

    private static BenchmarkReport? Find(Summary summary, string method)
        => summary.Reports.FirstOrDefault(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);

    private static string Document(Summary summary, Summary overhead, List<string> rows, string load, string? guest, string artifactsPath)
    {
        var doc = new StringBuilder();
        doc.AppendLine("# Performance (hot paths, issue 11)");
        doc.AppendLine();
        doc.AppendLine("Generated by `./bench.sh` (bench/Vfio.Benchmarks: `HotPathBenchmarks` on the host, `GuestGoals` in the testbed guest); do not edit by hand. C baselines are");
        doc.AppendLine("bench/native/vfiobench.c, built with `gcc -O2` and called in the same process; each C loop runs the operation");
        doc.AppendLine("many times per call, so the figures are per operation. Ratio = library median / C median; interval = the");
        doc.AppendLine("library's 99.9% confidence interval over C's (worst and best case) for H1 and H2, a bootstrap 95% interval of");
        doc.AppendLine("the median for the rows measured in rounds. A goal is ok when the ratio (or, for H1, the extra time per access)");
        doc.AppendLine("is within it and the library allocates 0 B per operation; inconclusive when the median misses but the interval");
        doc.AppendLine("reaches the goal (the spread, mostly other load on the machine, is wider than the miss); miss otherwise.");
        doc.AppendLine();
        doc.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {CpuName()}, {Environment.ProcessorCount} logical CPUs");
        doc.AppendLine(CultureInfo.InvariantCulture, $"- Kernel: Linux {ReadFirstLine("/proc/sys/kernel/osrelease")} ({RuntimeInformation.OSArchitecture})");
        doc.AppendLine(CultureInfo.InvariantCulture, $"- Runtime: {RuntimeInformation.FrameworkDescription}; BenchmarkDotNet 0.15.8, 5 warm-up and 15 measured iterations of 250 ms, in process, with the JIT's own disassembly of H1; H3 and H5 by thread CPU time, H4 by interleaved rounds (see each row)");
        doc.AppendLine(CultureInfo.InvariantCulture, $"- Guest (G and N rows): {guest ?? "not measured in this run (the guest run failed or the testbed is not prepared)"}; G: C and the library in one process, ABBA rounds, the ratio is the median of the per-round ratios with a bootstrap 95% interval; N1: the kernel's nvme driver in the C column, medians of interleaved rounds");
        doc.AppendLine(CultureInfo.InvariantCulture, $"- Run: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; load average at start: {load} (other work on the machine inflates and spreads the figures)");
        doc.AppendLine();
        doc.AppendLine("| goal | C | library | ratio | interval | verdict | load average |");
        doc.AppendLine("|---|---|---|---|---|---|---|");
        foreach (string row in rows)
        {
            doc.AppendLine(row);
        }
        doc.AppendLine();
        doc.Append(Notes());
        doc.AppendLine();
        doc.AppendLine("## All benchmarks");
        doc.AppendLine();
        doc.AppendLine("`Accessor_*` is the per-call `VfioRegionMapping` accessor, `Raw_*` a C# pointer loop, `Libc_*` the bare");
        doc.AppendLine("LibraryImport without the kernel port's EINTR loop.");
        doc.AppendLine();
        doc.AppendLine("| benchmark | category | median ns/op | mean ns/op | allocated B/op |");
        doc.AppendLine("|---|---|---|---|---|");
        foreach (BenchmarkReport report in summary.Reports.Where(r => r.ResultStatistics is not null))
        {
            string category = string.Join(",", report.BenchmarkCase.Descriptor.Categories);
            doc.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {report.BenchmarkCase.Descriptor.WorkloadMethod.Name} | {category} | {report.ResultStatistics!.Median:0.###} | {report.ResultStatistics.Mean:0.###} | {report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)} |"));
        }
        doc.AppendLine();
        doc.AppendLine("## H2: what a syscall wrapper costs besides the syscall");
        doc.AppendLine();
        doc.AppendLine("`WrapperOverheadBenchmarks` calls a C function that fails with ENOTTY without entering the kernel, adding one");
        doc.AppendLine("wrapper layer at a time (see the class), so the wrapper's own cost shows without the kernel's time and noise.");
        doc.AppendLine();
        doc.AppendLine("| layers | median ns/op | allocated B/op |");
        doc.AppendLine("|---|---|---|");
        foreach (BenchmarkReport report in overhead.Reports.Where(r => r.ResultStatistics is not null))
        {
            doc.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {report.BenchmarkCase.Descriptor.WorkloadMethod.Name} | {report.ResultStatistics!.Median:0.##} | {report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)} |"));
        }
        string? asm = Disassembly(artifactsPath);
        if (asm is not null)
        {
            doc.AppendLine();
            doc.AppendLine("## H1: the JIT's code");
            doc.AppendLine();
            doc.AppendLine("The window benchmarks and the raw C# pointer loop as the JIT last compiled them in this run (`DOTNET_JitDisasm`).");
            doc.AppendLine("The goal is one load or store per access plus at most one compare-and-branch bounds check.");
            doc.AppendLine();
            doc.Append(asm);
        }
        return doc.ToString();
    }

    // bench.sh runs the full mode with DOTNET_JitDisasm naming the H1 methods and DOTNET_JitStdOutFile=<artifacts>/jit-asm.txt
    // (the JIT's own listing needs no disassembler). The JIT writes one listing per compilation
    // (tier 0, OSR, tier 1); the last one of each method is the code that ran in the measured iterations.
    private static string? Disassembly(string artifactsPath)
    {
        string file = Path.Combine(artifactsPath, "jit-asm.txt");
        if (!File.Exists(file))
        {
            return null;
        }
        var last = new Dictionary<string, List<string>>();
        List<string>? current = null;
        foreach (string line in File.ReadLines(file))
        {
            if (line.StartsWith("; Assembly listing for method ", StringComparison.Ordinal))
            {
                string method = line["; Assembly listing for method ".Length..];
                current = [];
                last[method[..method.IndexOf('(', StringComparison.Ordinal)]] = current;
            }
            current?.Add(line);
        }
        var output = new StringBuilder();
        foreach ((string method, List<string> listing) in last.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            output.AppendLine(CultureInfo.InvariantCulture, $"`{method}` ({listing[0][(listing[0].LastIndexOf('(') + 1)..].TrimEnd(')')}):");
            output.AppendLine();
            output.AppendLine("```assembly");
            foreach (string line in listing.Where(l => l.Length > 0 && !l.StartsWith("; ", StringComparison.Ordinal)))
            {
                output.AppendLine(line);
            }
            output.AppendLine("```");
            output.AppendLine();
        }
        return output.Length == 0 ? null : output.ToString();
    }

    // The hand-written part of docs/performance.md (how to read the figures, the measured reasons for missed goals),
    // kept next to the generator as bench/Vfio.Benchmarks/PerformanceNotes.md and embedded in the assembly.
    private static string Notes()
    {
        using Stream stream = typeof(HotPathGoals).Assembly.GetManifestResourceStream("PerformanceNotes.md")
            ?? throw new InvalidOperationException("PerformanceNotes.md is not embedded in the benchmark assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static string CpuName()
    {
        foreach (string line in File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo") : [])
        {
            if (line.StartsWith("model name", StringComparison.Ordinal))
            {
                return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>The 1-, 5- and 15-minute load averages of a /proc/loadavg line.</summary>
    internal static string LoadAverage(string loadavg) => string.Join(' ', loadavg.Split(' ').Take(3));

    internal static string ReadFirstLine(string path) => File.Exists(path) ? File.ReadLines(path).First().Trim() : "unknown";
}
