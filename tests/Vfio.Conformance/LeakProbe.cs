// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Conformance;

/// <summary>
/// What a process and its kernel hold at one moment, for the stress and soak cases: the process's fds (number and what
/// each points at), its locked and pinned memory, the vfio interrupt handlers the kernel registered for it, and the
/// simulated kernel's object tables. <see cref="ShouldEqual"/> names what grew.
/// </summary>
internal sealed record LeakSnapshot(
    IReadOnlyDictionary<int, string> Fds,
    ulong LockedBytes,
    int VfioIrqHandlers,
    SimulatedKernelState? Simulated)
{
    /// <summary>Takes the snapshot. Locked memory is <c>VmLck + VmPin</c> of /proc/self/status on the real kernel (Type1
    /// charges <c>locked_vm</c>, iommufd <c>pinned_vm</c> or the user's counter), the model's charged pages on the simulator.</summary>
    internal static LeakSnapshot Take(Rig rig)
    {
        var fds = new Dictionary<int, string>();
        foreach (string entry in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            string name = Path.GetFileName(entry);
            // An assembly's file stays open once the runtime loads it (lazily, e.g. for an exception's message in
            // the middle of a run): that is the runtime's, not anything the library opened, which never opens a .dll.
            if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int fd)
                && LinuxKernel.Instance.ReadLink(entry, out string target) == 0
                && !target.EndsWith(".dll", StringComparison.Ordinal))
            {
                fds[fd] = target;
            }
        }
        SimulatedKernelState? simulated = rig.Simulator?.GetState();
        ulong locked = simulated is { } state ? state.PinnedPages * 4096 : StatusKib("VmLck:") * 1024 + StatusKib("VmPin:") * 1024;
        int handlers = rig.Simulator is null && File.Exists("/proc/interrupts")
            ? File.ReadLines("/proc/interrupts").Count(l => l.Contains("vfio", StringComparison.Ordinal))
            : 0;
        return new LeakSnapshot(fds, locked, handlers, simulated);
    }

    /// <summary>One line for a report.</summary>
    internal string Describe() =>
        $"fds {Fds.Count} (vfio/iommu {Fds.Values.Count(IsVfio)}), locked {LockedBytes / 1024} KiB, vfio IRQ handlers {VfioIrqHandlers}"
        + (Simulated is { } s ? $", simulated files {s.OpenFiles} mappings {s.DmaMappings} iommufd objects {s.IommuFdObjects}" : string.Empty);

    /// <summary>Fails naming every fd, byte or object that <paramref name="after"/> holds and this snapshot did not (or,
    /// for locked memory, handlers and the simulated kernel, any difference).</summary>
    internal void ShouldEqual(LeakSnapshot after, string context)
    {
        // Compared by kind (a socket's or pipe's inode number differs when the simulator reopens one under another number).
        Dictionary<string, int> kindsBefore = Kinds(Fds), kindsAfter = Kinds(after.Fds);
        string[] grown = [.. kindsAfter.Where(k => k.Value > kindsBefore.GetValueOrDefault(k.Key)).Select(k => $"{k.Key} x{k.Value - kindsBefore.GetValueOrDefault(k.Key)}")];
        var problems = new List<string>();
        // Fewer fds is no leak: something the run did not open (an earlier test's handle, finalised meanwhile) closed.
        if (after.Fds.Count > Fds.Count || grown.Length > 0)
        {
            problems.Add($"fds {Fds.Count} -> {after.Fds.Count}, more of: [{string.Join(", ", grown)}]");
        }
        if (after.LockedBytes != LockedBytes)
        {
            problems.Add($"locked memory {LockedBytes} -> {after.LockedBytes} bytes");
        }
        if (after.VfioIrqHandlers != VfioIrqHandlers)
        {
            problems.Add($"vfio interrupt handlers in /proc/interrupts {VfioIrqHandlers} -> {after.VfioIrqHandlers}");
        }
        if (after.Simulated != Simulated)
        {
            problems.Add($"simulated kernel {Simulated} -> {after.Simulated}");
        }
        problems.ShouldBeEmpty($"{context}: something leaked");
    }

    private static Dictionary<string, int> Kinds(IReadOnlyDictionary<int, string> fds) =>
        fds.Values.Select(t => t.StartsWith("socket:", StringComparison.Ordinal) ? "socket" : t.StartsWith("pipe:", StringComparison.Ordinal) ? "pipe" : t)
            .GroupBy(k => k, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);

    private static bool IsVfio(string target) =>
        target.StartsWith("/dev/vfio", StringComparison.Ordinal) || target == "/dev/iommu" || target.Contains("vfio", StringComparison.Ordinal);

    private static ulong StatusKib(string field)
    {
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line is null ? 0 : ulong.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// The kernel log records added since it was opened (<c>/dev/kmsg</c>, read without blocking), on the real kernel; the
/// simulator has no log, so there it reports nothing. <see cref="Reports"/> are the lines that start a kernel report:
/// WARNING, BUG, Oops, a call trace, a general protection fault, UBSAN.
/// </summary>
internal sealed class KernelLog : IDisposable
{
    private static readonly string[] s_reportMarkers = ["WARNING:", "BUG:", "kernel BUG at", "Oops:", "Call Trace", "general protection fault", "UBSAN:"];
    private readonly SafeFileHandle? _kmsg;
    private readonly byte[] _record = new byte[8192];

    /// <summary>Opens the log and skips what it already holds.</summary>
    internal KernelLog(Rig rig)
    {
        if (rig.Simulator is not null)
        {
            return;
        }
        int rc = LinuxKernel.Instance.Open("/dev/kmsg", OpenFlags.ReadOnly | OpenFlags.NonBlocking, out SafeFileHandle kmsg);
        rc.ShouldBe(0, "opening /dev/kmsg (the test reads the kernel log to prove no warning was added)");
        _kmsg = kmsg;
        _ = ReadNew();
    }

    /// <summary>The records added since the last call, as text (the message after the record header).</summary>
    internal List<string> ReadNew()
    {
        var lines = new List<string>();
        if (_kmsg is null)
        {
            return lines;
        }
        while (true)
        {
            // One record per read; EAGAIN at the end; EPIPE when records were overwritten before being read (go on).
            long n = LinuxKernel.Instance.PRead(_kmsg, _record, 0);
            if (n == -(long)Errno.EPIPE)
            {
                lines.Add("(kernel log records were overwritten before they were read)");
                continue;
            }
            if (n <= 0)
            {
                return lines;
            }
            string record = System.Text.Encoding.UTF8.GetString(_record, 0, (int)n);
            int body = record.IndexOf(';', StringComparison.Ordinal);
            lines.Add(record[(body + 1)..].Split('\n')[0]);
        }
    }

    /// <summary>The kernel reports among <paramref name="lines"/>.</summary>
    internal static string[] Reports(IEnumerable<string> lines) =>
        [.. lines.Where(l => s_reportMarkers.Any(m => l.Contains(m, StringComparison.Ordinal)) && !l.Contains("RETBleed", StringComparison.Ordinal))];

    public void Dispose() => _kmsg?.Dispose();
}

/// <summary>Reads the stress and soak knobs from the environment and writes their reports.</summary>
internal static class Knobs
{
    /// <summary>A whole number from <paramref name="variable"/>, else <paramref name="fallback"/>.</summary>
    internal static int Int(string variable, int fallback)
    {
        string? text = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new InvalidOperationException($"{variable}='{text}' is not a whole number.");
    }

    /// <summary>Writes <paramref name="line"/> to the case's output and, in the testbed guest, appends it to
    /// <c>$VFIO_TESTBED_RESULTS/reliability-report.txt</c>, where tests/testbed/soak.sh reads it.</summary>
    internal static void Report(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        if (Environment.GetEnvironmentVariable("VFIO_TESTBED_RESULTS") is { Length: > 0 } results && Directory.Exists(results))
        {
            File.AppendAllText(Path.Combine(results, "reliability-report.txt"), line + "\n");
        }
    }
}
