// SPDX-License-Identifier: MIT
using Spectre.Console;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Cli;

/// <summary>What a command runs against: where it writes, the machine's kernel, and the simulator to use for
/// <c>--simulate</c> (or for the demo on a machine without VFIO). Tests give their own.</summary>
internal sealed class CliEnvironment
{
    /// <summary>Standard output: tables, lines or JSON.</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Standard error: failure messages and their fixes.</summary>
    public required TextWriter Error { get; init; }

    /// <summary>The machine's kernel: the running Linux kernel, or a model of a machine in tests.</summary>
    public IKernel Kernel { get; init; } = LinuxKernel.Instance;

    /// <summary>Creates the simulated machine for <c>--simulate</c>: by default the testbed's (edu at 00:02.0).</summary>
    public Func<SimulatedKernel> CreateSimulator { get; init; } = static () => new SimulatedKernel(SimulatedMachines.Testbed());

    /// <summary>Creates the simulated POWER machine (sPAPR TCE instead of Type1) for <c>--simulate --backend spapr-tce</c>.</summary>
    public Func<SimulatedKernel> CreatePowerSimulator { get; init; } = static () => new SimulatedKernel(SimulatedMachines.Testbed(new() { Spapr = true }));

    /// <summary>True when the commands dispose what <see cref="CreateSimulator"/> returned (false when a test keeps it).</summary>
    public bool OwnsSimulator { get; init; } = true;

    /// <summary>True when <see cref="Out"/> is a terminal (colours, its width); false for pipes, files and tests.</summary>
    public bool OutIsTerminal { get; init; }

    /// <summary>True when <see cref="Error"/> is a terminal (a coloured "error:").</summary>
    public bool ErrorIsTerminal { get; init; }

    /// <summary>True when the user asked for no colour (<c>NO_COLOR</c> set and not empty, see no-color.org, or
    /// <c>TERM=dumb</c>).</summary>
    public bool NoColor { get; init; }

    /// <summary>The terminal's width in columns when <see cref="OutIsTerminal"/>; tables fit it.</summary>
    public int Width { get; init; } = 80;

    /// <summary>Cancelled by Ctrl+C (SIGINT) or SIGTERM: a command stops waiting, tears down and exits 130.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Colour on standard output: a terminal, and no <see cref="NoColor"/>.</summary>
    public bool OutColor => OutIsTerminal && !NoColor;

    /// <summary>Colour on standard error: a terminal, and no <see cref="NoColor"/>.</summary>
    public bool ErrorColor => ErrorIsTerminal && !NoColor;

    /// <summary>The process's own streams and the running kernel; <paramref name="cancellation"/> is the token Ctrl+C
    /// cancels.</summary>
    /// <param name="cancellation">The token the process's signal handlers cancel.</param>
    public static CliEnvironment Process(CancellationToken cancellation = default) => new()
    {
        Out = Console.Out,
        Error = Console.Error,
        OutIsTerminal = !Console.IsOutputRedirected,
        ErrorIsTerminal = !Console.IsErrorRedirected,
        NoColor = WantsNoColor(Environment.GetEnvironmentVariable("NO_COLOR"), Environment.GetEnvironmentVariable("TERM")),
        Width = !Console.IsOutputRedirected && TerminalWidth() is int w and > 0 ? w : 80,
        Cancellation = cancellation,
    };

    /// <summary>no-color.org: <c>NO_COLOR</c> present and not empty disables colour; so does a dumb terminal.</summary>
    internal static bool WantsNoColor(string? noColor, string? term) => !string.IsNullOrEmpty(noColor) || term == "dumb";

    private static int? TerminalWidth()
    {
        try
        {
            return Console.WindowWidth;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>A console for tables over <see cref="Out"/>: colour only when <see cref="OutColor"/>, the terminal's
    /// width on a terminal, and wide enough otherwise that no table row or line wraps (scripts and tests read them line
    /// by line).</summary>
    public IAnsiConsole CreateConsole()
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = OutColor ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = OutColor ? ColorSystemSupport.Standard : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(Out),
        });
        console.Profile.Width = OutIsTerminal ? Width : 4096;
        return console;
    }
}

/// <summary>The kernel one command runs on: the machine's, or a simulated one (owned or a test's).</summary>
internal sealed class KernelSession : IDisposable
{
    private readonly SimulatedKernel? _owned;

    private KernelSession(IKernel kernel, SimulatedKernel? owned, string? simulatorReason)
    {
        Kernel = kernel;
        _owned = owned;
        SimulatorReason = simulatorReason;
    }

    public IKernel Kernel { get; }

    /// <summary>True when the kernel is the simulator (by <c>--simulate</c>, by fallback, or a test's model).</summary>
    public bool IsSimulated => Kernel is SimulatedKernel;

    /// <summary>Why the simulator is used; null on the machine's kernel.</summary>
    public string? SimulatorReason { get; }

    /// <summary>"simulator" or "linux", for output.</summary>
    public string KernelName => IsSimulated ? "simulator" : "linux";

    /// <summary>Opens the kernel a command runs on.</summary>
    /// <param name="environment">The environment.</param>
    /// <param name="simulate">True for <c>--simulate</c>.</param>
    /// <param name="fallBackWhenNoVfio">True (the demo) to use the simulator when the machine has no VFIO device.</param>
    /// <param name="backend">The <c>--backend</c> given: <c>spapr-tce</c> simulates a POWER machine.</param>
    public static KernelSession Open(CliEnvironment environment, bool simulate, bool fallBackWhenNoVfio, string backend = "auto")
    {
        bool power = backend == "spapr-tce";
        if (simulate)
        {
            return Simulated(environment, power ? "--simulate was given (a POWER machine, for --backend spapr-tce)" : "--simulate was given", power);
        }
        if (fallBackWhenNoVfio && NoVfioDevice(environment.Kernel) is string why)
        {
            return Simulated(environment, why, power);
        }
        return new KernelSession(environment.Kernel, null, environment.Kernel is SimulatedKernel ? "the machine is simulated" : null);
    }

    /// <summary>Why the machine has no VFIO device to use, or null when it has one: neither <c>/dev/vfio/vfio</c> nor
    /// <c>/dev/iommu</c> exists, or no device is bound to a VFIO driver.</summary>
    public static string? NoVfioDevice(IKernel kernel)
    {
        if (!kernel.Exists("/dev/vfio/vfio") && !kernel.Exists("/dev/iommu"))
        {
            return "this machine has no VFIO device (neither /dev/vfio/vfio nor /dev/iommu exists)";
        }
        return VfioSysfs.ListDevices(kernel).Any(static d => d.IsBoundToVfio)
            ? null
            : "this machine has no VFIO device (no device is bound to vfio-pci or vfio-platform)";
    }

    public void Dispose() => _owned?.Dispose();

    private static KernelSession Simulated(CliEnvironment environment, string reason, bool power)
    {
        SimulatedKernel kernel = power ? environment.CreatePowerSimulator() : environment.CreateSimulator();
        return new KernelSession(kernel, environment.OwnsSimulator ? kernel : null, reason);
    }
}
