// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Samples.Nvme;

namespace Vfio.Benchmarks;

/// <summary>
/// Goal N1 of issue 12, run inside the testbed's QEMU guest (pci shape) by bench.sh: 4 KiB random reads of the nvme at
/// 0000:00:03.0 at queue depth 1 and 32, samples/Nvme's user-space driver (the device on vfio-pci, a Type1 container)
/// against the guest kernel's own nvme driver on the same device (rebound through sysfs, read with O_DIRECT by
/// bench/native/nvmeread.c through Linux AIO), in interleaved rounds (library, kernel, library, kernel, ...), the device
/// given back to vfio-pci at the end. It reports the medians and their ratio; there is no goal to meet.
/// </summary>
internal static class NvmeGoals
{
    private const string Address = "0000:00:03.0";
    private const string Sysfs = "/sys/bus/pci/devices/" + Address;
    private const int Block = 4096;
    private static readonly int[] s_depths = [1, 32];

    /// <summary>Runs N1; returns the exit code. <paramref name="reader"/>: the static nvmeread binary. Lines "N1 ..." go to
    /// stdout; the rows of docs/performance.md are appended to <paramref name="rowsPath"/>.</summary>
    internal static int Run(bool quick, string reader, string? rowsPath)
    {
        int rounds = quick ? 2 : 3;
        double seconds = quick ? 1 : 2;
        var library = s_depths.ToDictionary(d => d, _ => new List<double>());
        var kernel = s_depths.ToDictionary(d => d, _ => new List<double>());
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                foreach ((int depth, double iops) in LibraryRound(seconds))
                {
                    library[depth].Add(iops);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"N1 round {round + 1} library QD{depth}: {iops:0} IOPS"));
                }
                foreach ((int depth, double iops) in KernelRound(reader, seconds))
                {
                    kernel[depth].Add(iops);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"N1 round {round + 1} kernel QD{depth}: {iops:0} IOPS"));
                }
            }
        }
        catch (Exception e) when (e is NvmeControllerException or NvmeCommandException or NvmeTimeoutException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.WriteLine($"N1 error: {e.GetType().Name}: {e.Message}");
            return 1;
        }
        finally
        {
            Rebind("vfio-pci");   // the device as the testbed bound it
        }
        var rows = new StringBuilder();
        string load = "guest " + HotPathGoals.LoadAverage(HotPathGoals.ReadFirstLine("/proc/loadavg"));
        foreach (int depth in s_depths)
        {
            double l = InterleavedRounds.Median([.. library[depth]]), k = InterleavedRounds.Median([.. kernel[depth]]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"N1-QD{depth} library/kernel IOPS={l / k:0.00} (library {l:0} IOPS, kernel {k:0} IOPS, medians of {rounds} interleaved rounds of {seconds:0.#} s)"));
            rows.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| N1 QD{depth}: 4 KiB random reads of the nvme (00:03.0), samples/Nvme on vfio-pci vs the guest kernel's nvme driver (O_DIRECT, Linux AIO, bench/native/nvmeread.c), time per read; {rounds} interleaved rounds of {seconds:0.#} s | {InterleavedRounds.Format(1e9 / k)} ({k:0} IOPS) | {InterleavedRounds.Format(1e9 / l)} ({l:0} IOPS) | {k / l:0.00} | medians, no interval | no goal: library/kernel IOPS {l / k:0.00} | {load} |"));
        }
        if (rowsPath is not null)
        {
            if (!File.Exists(rowsPath))
            {
                rows.Insert(0, $"guest: QEMU TCG guest of the testbed (pci shape), Linux {HotPathGoals.ReadFirstLine("/proc/sys/kernel/osrelease")}, {Environment.ProcessorCount} vCPUs{Environment.NewLine}");
            }
            File.AppendAllText(rowsPath, rows.ToString());
        }
        return 0;
    }

    /// <summary>One round of the library: the device on vfio-pci, the controller enabled, the I/O queue pair created,
    /// each depth measured, a clean shutdown.</summary>
    private static List<(int Depth, double Iops)> LibraryRound(double seconds)
    {
        Rebind("vfio-pci");
        var results = new List<(int, double)>();
        using var backend = new LegacyBackend(LinuxKernel.Instance);
        using var space = new DmaSpace("N1 nvme");
        using AttachedDevice device = backend.AttachDevice(VfioDeviceSource.Pci(Address), space);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, (ulong)(s_depths.Max() * Block));
        NvmeController nvme = NvmeController.Open(device);
        try
        {
            NvmeNamespaceInfo ns = nvme.IdentifyNamespaceAsync().GetAwaiter().GetResult();
            nvme.CreateIoQueuesAsync().GetAwaiter().GetResult();
            foreach (int depth in s_depths)
            {
                _ = Reads(nvme, ns, buffer, depth, 0.2);   // warm-up: the JIT, the first interrupts
                results.Add((depth, Reads(nvme, ns, buffer, depth, seconds)));
            }
            nvme.ShutdownAsync().GetAwaiter().GetResult();
        }
        finally
        {
            nvme.Dispose();
        }
        return results;
    }

    /// <summary><paramref name="depth"/> readers, each keeping one 4 KiB read of a random page in flight on its own page
    /// of <paramref name="buffer"/>, for <paramref name="seconds"/>; returns reads per second.</summary>
    private static double Reads(NvmeController nvme, NvmeNamespaceInfo ns, DmaBuffer buffer, int depth, double seconds)
    {
        ulong pages = ns.Bytes / Block;
        int blocks = Block / ns.BlockSize;
        long ios = 0;
        ulong x = 0x9e3779b97f4a7c15UL;   // nvmeread.c's xorshift, one sequence shared by the readers
        var gate = new Lock();
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        async Task Reader(int slot)
        {
            while (Stopwatch.GetTimestamp() < end)
            {
                ulong page;
                lock (gate)
                {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    page = x % pages;
                }
                await nvme.ReadAsync(ns, page * (ulong)blocks, blocks, buffer, (ulong)(slot * Block)).ConfigureAwait(false);
                Interlocked.Increment(ref ios);
            }
        }
        Task.WhenAll(Enumerable.Range(0, depth).Select(Reader)).GetAwaiter().GetResult();
        return ios / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>One round of the kernel: the device on the nvme driver, nvmeread at each depth on its namespace.</summary>
    private static List<(int Depth, double Iops)> KernelRound(string reader, double seconds)
    {
        Rebind("nvme");
        string disk = WaitForDisk();
        var results = new List<(int, double)>();
        foreach (int depth in s_depths)
        {
            _ = RunReader(reader, disk, depth, 0.2);
            results.Add((depth, RunReader(reader, disk, depth, seconds)));
        }
        return results;
    }

    private static double RunReader(string reader, string disk, int depth, double seconds)
    {
        var start = new ProcessStartInfo(reader) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(disk);
        start.ArgumentList.Add(depth.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(seconds.ToString(CultureInfo.InvariantCulture));
        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"{reader} did not start.");
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromSeconds(seconds + 60)) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{reader} {disk} {depth} {seconds} failed: {error.Trim()} {output.Trim()}");
        }
        string iops = output.Split(' ', StringSplitOptions.TrimEntries).Single(f => f.StartsWith("iops=", StringComparison.Ordinal));
        return double.Parse(iops["iops=".Length..], CultureInfo.InvariantCulture);
    }

    /// <summary>The block device of the controller's first namespace once the nvme driver has scanned it.</summary>
    private static string WaitForDisk()
    {
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start) < TimeSpan.FromSeconds(120))
        {
            string nvme = Path.Combine(Sysfs, "nvme");
            if (Directory.Exists(nvme))
            {
                foreach (string controller in Directory.GetDirectories(nvme))
                {
                    foreach (string ns in Directory.GetDirectories(controller, Path.GetFileName(controller) + "n1"))
                    {
                        string dev = "/dev/" + Path.GetFileName(ns);
                        if (File.Exists(dev) || Path.Exists(dev))
                        {
                            return dev;
                        }
                    }
                }
            }
            Thread.Sleep(100);
        }
        throw new InvalidOperationException($"{Address} bound to nvme shows no namespace block device within 120 s ({Sysfs}/nvme).");
    }

    /// <summary>Binds the device to <paramref name="driver"/> through driver_override (nothing when it already is).</summary>
    private static void Rebind(string driver)
    {
        string link = Path.Combine(Sysfs, "driver");
        string? current = Directory.Exists(link) ? Path.GetFileName(new DirectoryInfo(link).LinkTarget) : null;
        if (current == driver)
        {
            return;
        }
        File.WriteAllText(Path.Combine(Sysfs, "driver_override"), driver);
        if (current is not null)
        {
            File.WriteAllText(Path.Combine(link, "unbind"), Address);
        }
        File.WriteAllText($"/sys/bus/pci/drivers/{driver}/bind", Address);
        string? now = Directory.Exists(link) ? Path.GetFileName(new DirectoryInfo(link).LinkTarget) : null;
        if (now != driver)
        {
            throw new InvalidOperationException($"{Address} is bound to '{now}' after binding it to {driver}.");
        }
    }
}
