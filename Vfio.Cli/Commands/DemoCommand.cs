// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Vfio.Backends.SpaprTce;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Cli.Commands;

/// <summary>
/// <c>vfioctl demo</c>: attach an edu device, map a DMA buffer, check the device, DMA RAM → edu → RAM with an MSI after
/// each transfer, compare, unmap, detach — each step timed. On a machine without a VFIO device it runs on the simulator
/// and says so.
/// </summary>
internal static class DemoCommand
{
    private const ushort EduVendor = 0x1234;
    private const ushort EduDevice = 0x11e8;
    private const int Transfer = EduDriver.BufferSize;
    private const ulong BufferBytes = 2 * Transfer;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    /// <summary>What the demo maps, for <c>vfioctl doctor</c>'s default mapping plan.</summary>
    internal const ulong MappedBytes = BufferBytes;

    internal static int Run(CliEnvironment environment, string backend, string? device, bool simulate, bool json)
    {
        using KernelSession session = KernelSession.Open(environment, simulate, fallBackWhenNoVfio: true, backend);
        var steps = new List<StepReport>();
        IAnsiConsole? console = json ? null : environment.CreateConsole();
        if (console is not null)
        {
            Output.KernelLine(console, session);
        }
        string name = device ?? "(edu)";
        string? usedBackend = null;
        ErrorReport? error = null;
        try
        {
            name = device ?? FindEdu(session);
            RunSteps(session, backend, name, steps, console, environment.Cancellation, attachedThrough: b => usedBackend = b);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = Cli.Failure(environment, e, simulated: session.IsSimulated);
            if (steps.Count == 0 || steps[^1].Ok)
            {
                steps.Add(new StepReport("setup", false, 0, error.Message));
            }
        }
        var report = new DemoReport(session.KernelName, session.SimulatorReason, name, usedBackend, steps);
        if (json)
        {
            JsonContract.Write(environment, "demo", report, error, static c => c.JsonEnvelopeDemo);
        }
        else if (error is null)
        {
            console!.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Demo passed on {(session.IsSimulated ? "the simulator" : "Linux")}: {steps.Count} steps in {Output.Milliseconds(steps.Sum(static s => s.Milliseconds))}."));
        }
        if (error is not null)
        {
            Cli.WriteError(environment, error.Message, error.Fix);
        }
        return error?.ExitCode ?? 0;
    }

    /// <summary>The first edu bound to a VFIO driver: the testbed's 0000:00:02.0 on the simulator.</summary>
    private static string FindEdu(KernelSession session)
    {
        VfioDeviceEntry? edu = VfioSysfs.ListDevices(session.Kernel)
            .FirstOrDefault(static d => d.IsBoundToVfio && d.VendorId == EduVendor && d.DeviceId == EduDevice);
        return edu?.Name ?? throw new CliException(ExitCode.DeviceNotFound,
            "No edu device (1234:11e8) is bound to a VFIO driver on this machine.",
            "Give one with --device <address> (QEMU: -device edu, bound to vfio-pci), or run with --simulate.");
    }

    /// <summary>Runs the steps; <paramref name="attachedThrough"/> hears the backend as soon as the device is attached, so
    /// the report names it also when a later step fails.</summary>
    private static void RunSteps(KernelSession session, string backendName, string device, List<StepReport> steps, IAnsiConsole? console,
        CancellationToken cancellation, Action<string> attachedThrough)
    {
        VfioDeviceSource source = DeviceLookup.Find(session.Kernel, device);
        using CliBackends backends = CliBackends.Create(session.Kernel, backendName);
        var recorder = new StepRecorder(steps, console, cancellation);
        DmaSpace space = backends.Manager.CreateDmaSpace("vfioctl-demo");
        AttachedDevice attached = recorder.Run("attach", () =>
        {
            AttachedDevice a = backends.Manager.AttachDevice(source, space);
            attachedThrough(a.Backend.Name);
            return (a, $"{a.Name} through {a.Backend.Name} ({a.Container.Name}, IOMMU group {a.IommuGroup?.ToString(CultureInfo.InvariantCulture) ?? "-"})");
        });
        using (space)
        using (attached)
        using (var edu = new EduDriver(attached, useMmap: true))
        {
            recorder.Run("identify", () =>
            {
                uint id = edu.ReadIdentification();
                Expect(id == EduDriver.Identification, $"identification register is {Output.Hex(id)}, not edu's {Output.Hex(EduDriver.Identification)}: is {device} an edu device?");
                const uint Probe = 0x5a5a_a5a5;
                uint answer = edu.CheckLiveness(Probe);
                Expect(answer == ~Probe, $"liveness check returned {Output.Hex(answer)}, expected {Output.Hex(~Probe)}");
                return (0, $"edu {id >> 24}.{(id >> 16) & 0xff} (identification {Output.Hex(id)}), liveness {Output.Hex(Probe)} -> {Output.Hex(answer)}");
            });
            // Disposed before the space on every path (unmapped, then freed); after a failed step the space may already be
            // disposed, which unmapped it: then it is only freed.
            using DmaBuffer buffer = recorder.Run("map", () =>
            {
                DmaBuffer b = DmaBuffer.Allocate(space, BufferBytes, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
                string where = attached.Container is SpaprTceContainer spapr
                    ? $"; sPAPR TCE {(spapr.IsV2 ? "v2" : "v1")} window {InfoCommand.DescribeWindows(InfoCommand.WindowReports(spapr))}{(spapr.IsV2 ? $", {Output.Size(spapr.PreRegisteredBytes)} pre-registered" : string.Empty)}{(spapr.EehAvailable ? $", EEH {spapr.GetEehState()}" : string.Empty)}"
                    : string.Empty;
                return (b, $"{Output.Size(BufferBytes)} of process memory at IOVA {Output.Hex(b.Iova)} (edu's DMA mask {Output.Hex(EduDriver.DefaultDmaMask)}){where}");
            });
            // Devices.Pci owns the vector's eventfd; disposing the driver disables MSI on every path.
            InterruptEvent msi = recorder.Run("enable MSI", () =>
            {
                edu.EnableBusMaster();
                return (edu.EnableMsi(), "bus master on, MSI vector 0 -> eventfd");
            });
            byte[] pattern = new byte[Transfer];
            Random.Shared.NextBytes(pattern);
            pattern.CopyTo(buffer.Span);
            ulong iova = buffer.Iova;
            recorder.Run("DMA RAM -> edu + MSI", () =>
            {
                edu.DmaToDevice(iova, 0, Transfer, s_timeout, raiseInterrupt: true);
                return (0, WaitForMsi(edu, msi, $"{Transfer} bytes from IOVA {Output.Hex(iova)}", cancellation));
            });
            recorder.Run("DMA edu -> RAM + MSI", () =>
            {
                edu.DmaFromDevice(0, iova + Transfer, Transfer, s_timeout, raiseInterrupt: true);
                return (0, WaitForMsi(edu, msi, $"{Transfer} bytes to IOVA {Output.Hex(iova + Transfer)}", cancellation));
            });
            recorder.Run("compare", () =>
            {
                ReadOnlySpan<byte> back = buffer.Span.Slice(Transfer, Transfer);
                int diff = back.CommonPrefixLength(pattern);
                if (diff != Transfer)
                {
                    Expect(false, $"the data that came back differs from what was sent, first at byte {diff} ({Output.Hex(back[diff])} instead of {Output.Hex(pattern[diff])})");
                }
                return (0, $"{Transfer} bytes came back as sent");
            });
            recorder.Run("unmap", () =>
            {
                edu.DisableMsi();
                buffer.Dispose();
                return (0, $"IOVA {Output.Hex(iova)} unmapped and the buffer freed, MSI disabled");
            });
            recorder.Run("detach", () =>
            {
                edu.Dispose();
                attached.Dispose();
                space.Dispose();
                return (0, $"{device} detached, DMA space released");
            });
        }
    }

    /// <summary>Waits for the MSI, at most <see cref="s_timeout"/>; Ctrl+C ends the wait (OperationCanceledException).</summary>
    private static string WaitForMsi(EduDriver edu, InterruptEvent msi, string what, CancellationToken cancellation)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(s_timeout);
        ulong count = 0;
        try
        {
            count = msi.WaitAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            Expect(false, $"no MSI within {s_timeout.TotalSeconds:0} s after the DMA of {what}");
        }
        uint status = edu.ReadInterruptStatus();
        Expect((status & EduDriver.DmaInterruptStatus) != 0, $"an MSI arrived but edu's interrupt status is {Output.Hex(status)}, not the DMA bit {Output.Hex(EduDriver.DmaInterruptStatus)}");
        edu.AcknowledgeInterrupt(status);
        return string.Create(CultureInfo.InvariantCulture, $"{what}, {count} MSI (status {Output.Hex(status)}, acknowledged)");
    }

    private static void Expect(bool condition, string failure)
    {
        if (!condition)
        {
            throw new CliException(ExitCode.Mismatch, "Demo check failed: " + failure + ".",
                "On real hardware check the device's driver and IOMMU (vfioctl doctor); on the simulator this is a bug.");
        }
    }

    /// <summary>Times each step and prints it as it completes; a failing step is recorded with its message.</summary>
    private sealed class StepRecorder(List<StepReport> steps, IAnsiConsole? console, CancellationToken cancellation)
    {
        public T Run<T>(string name, Func<(T Result, string Detail)> step)
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                cancellation.ThrowIfCancellationRequested();
                (T result, string detail) = step();
                Add(new StepReport(name, true, Stopwatch.GetElapsedTime(start).TotalMilliseconds, detail));
                return result;
            }
            catch (Exception e)
            {
                Add(new StepReport(name, false, Stopwatch.GetElapsedTime(start).TotalMilliseconds, e.Message));
                throw;
            }
        }

        private void Add(StepReport step)
        {
            steps.Add(step);
            console?.Write(Output.Status(step.Ok ? "ok" : "fail", step.Ok ? "ok  " : "FAIL"));
            console?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $" {step.Name,-22} {Output.Milliseconds(step.Milliseconds),12}  {step.Detail}"));
        }
    }
}
