// SPDX-License-Identifier: MIT
using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Vfio.Cli.Commands;

namespace Vfio.Cli;

/// <summary>The command line of vfioctl: commands, options, exit codes. <see cref="Run"/> is what Main calls and what
/// tests call in-process with their own <see cref="CliEnvironment"/>.</summary>
internal static class Cli
{
    internal static int Run(string[] args, CliEnvironment environment)
    {
        RootCommand root = Build(environment, out Option<bool> json, out Option<bool> simulate);
        ParseResult parse = root.Parse(args);
        string? command = parse.CommandResult.Command == root ? null : parse.CommandResult.Command.Name;
        bool jsonOutput = args.Contains("--json", StringComparer.Ordinal);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            string message = string.Join(" ", parse.Errors.Select(static e => e.Message));
            const string Fix = "Run 'vfioctl --help' for the commands and options.";
            if (jsonOutput)
            {
                JsonContract.WriteError(environment, command, new ErrorReport(nameof(ExitCode.Usage), (int)ExitCode.Usage, message, Fix));
            }
            WriteError(environment, message, Fix);
            return (int)ExitCode.Usage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = environment.Out, Error = environment.Error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            ErrorReport error = Failure(environment, e, parse.GetValue(simulate));
            if (jsonOutput)
            {
                JsonContract.WriteError(environment, command, error);
            }
            WriteError(environment, error.Message, error.Fix);
            if (error.ExitCode == (int)ExitCode.Unexpected)
            {
                environment.Error.WriteLine(e.StackTrace);
            }
            return error.ExitCode;
        }
    }

    /// <summary>Writes a failure to standard error: "vfioctl: error: ..." (red on a terminal) and its fix.</summary>
    internal static void WriteError(CliEnvironment environment, string message, string? fix)
    {
        string error = environment.ErrorColor ? "\e[1;31merror:\e[0m " : "error: ";
        environment.Error.WriteLine("vfioctl: " + error + message);
        if (fix is not null && !message.Contains(fix, StringComparison.Ordinal))
        {
            environment.Error.WriteLine("vfioctl: " + (environment.ErrorColor ? "\e[1;33mfix:\e[0m " : "fix: ") + fix);
        }
    }

    /// <summary>The error report of a failure: its kind, exit code, message and fix, the fix pointing to
    /// <c>--simulate</c> and <c>doctor</c> when the cause is a machine without VFIO.</summary>
    internal static ErrorReport Failure(CliEnvironment environment, Exception exception, bool simulated)
    {
        if (exception is OperationCanceledException && environment.Cancellation.IsCancellationRequested)
        {
            return new ErrorReport(nameof(ExitCode.Cancelled), (int)ExitCode.Cancelled,
                "Cancelled (Ctrl+C): vfioctl stopped waiting and released what it had set up.", null);
        }
        (ExitCode code, string? hint) = ExitCodes.For(exception);
        string message = code == ExitCode.Unexpected ? $"{exception.GetType().Name}: {exception.Message}" : exception.Message;
        if (!simulated && code is ExitCode.DeviceNotFound or ExitCode.DeviceUnusable or ExitCode.BackendUnavailable or ExitCode.PermissionDenied
            && exception is not CliException { Code: ExitCode.BackendUnavailable } && KernelSession.NoVfioDevice(environment.Kernel) is string why)
        {
            // The library's fix is for a program (e.g. "register another backend"); a vfioctl user gets vfioctl's.
            if (hint is not null && message.EndsWith(" " + hint, StringComparison.Ordinal))
            {
                message = message[..^(hint.Length + 1)];
            }
            hint = NoVfioFix(why);
        }
        return new ErrorReport(code.ToString(), (int)code, WithFlags(message), hint is null || hint == message ? null : WithFlags(hint));
    }

    /// <summary>The fix for any failure on a machine without VFIO.</summary>
    internal static string NoVfioFix(string why)
        => $"Here {why}: run 'vfioctl doctor' to see what is missing and how to set it up, or add --simulate to run on the simulator.";

    /// <summary>The library's messages and fixes name configuration settings; where vfioctl has a flag for one, the flag
    /// is named beside it.</summary>
    private static readonly (Regex Setting, string Flag)[] s_settingFlags =
        [(new Regex(@"Vfio:AllowUnsafeNoIommu(=true)?", RegexOptions.CultureInvariant), "--allow-unsafe-noiommu")];

    internal static string WithFlags(string text)
    {
        foreach ((Regex setting, string flag) in s_settingFlags)
        {
            text = setting.Replace(text, $"$0 (vfioctl: {flag})");
        }
        return text;
    }

    private static RootCommand Build(CliEnvironment environment, out Option<bool> json, out Option<bool> simulate)
    {
        var simulateOption = new Option<bool>("--simulate")
        {
            Description = "Run on the simulator (an in-process model of Linux 6.12 VFIO/iommufd with the QEMU testbed's devices: edu at 0000:00:02.0 and 0000:00:04.0, an NVMe controller at 0000:00:03.0) instead of this machine's kernel.",
            Recursive = true,
        };
        simulate = simulateOption;
        json = new Option<bool>("--json") { Description = "Print one JSON object instead of tables: {schemaVersion, tool, version, command, ok, exitCode, result, error}, errors included (docs/cli-json.md).", Recursive = true };
        var backend = new Option<string>("--backend")
        {
            Description = "The IOMMU backend: auto (iommufd when /dev/iommu and the device's cdev exist, else legacy), legacy, iommufd, spapr-tce.",
            DefaultValueFactory = static _ => "auto",
        };
        backend.AcceptOnlyFromAmong(CliBackends.Names);

        var root = new RootCommand(
            "vfioctl: use a device through Linux VFIO from .NET - list candidates, inspect one, check the machine, run the edu DMA demo.\n\n"
            + ExitCodes.HelpText())
        {
            simulateOption,
            json,
        };

        var list = new Command("list", "List the devices VFIO can use (PCI and platform, from sysfs): address, vendor:device, driver, IOMMU group and its viability (naming the device and driver that block it), cdev, and the backends that could attach each.");
        Option<bool> jsonOption = json;
        list.SetAction(p => ListCommand.Run(environment, p.GetValue(simulateOption), p.GetValue(jsonOption)));
        root.Subcommands.Add(list);

        var device = new Argument<string>("device") { Description = "The device: a PCI address (0000:00:02.0), a platform device name, or its /sys/bus/*/devices path." };
        var allowNoIommu = new Option<bool>("--allow-unsafe-noiommu")
        {
            Description = "Allow a device in a no-IOMMU group (vfio.enable_unsafe_noiommu_mode=1; e.g. a platform device without an IOMMU): nothing then stops it from DMA anywhere in memory. As Vfio:AllowUnsafeNoIommu=true.",
        };
        var info = new Command("info", "Attach a device through a backend and print its flags, regions (size, offset, flags, capabilities incl. sparse mmap areas), IRQ indexes (count, flags), and the container or IOAS (page sizes, IOVA ranges, DMA_AVAIL, IOMMU hardware info).")
        {
            device,
            backend,
            allowNoIommu,
        };
        info.SetAction(p => InfoCommand.Run(environment, p.GetValue(device)!, p.GetValue(backend)!, p.GetValue(allowNoIommu), p.GetValue(simulateOption), p.GetValue(jsonOption)));
        root.Subcommands.Add(info);

        var dmaSize = new Option<string>("--dma-size")
        {
            Description = "The memory your program will map for DMA (pinned, counted against RLIMIT_MEMLOCK), e.g. 512M or 4G. Default: what 'vfioctl demo' maps.",
            DefaultValueFactory = static _ => DemoCommand.MappedBytes.ToString(CultureInfo.InvariantCulture),
        };
        var dmaMappings = new Option<int>("--dma-mappings")
        {
            Description = "How many DMA mappings your program will make (Type1 allows dma_entry_limit per container). Default: 1, as the demo.",
            DefaultValueFactory = static _ => 1,
        };
        var doctor = new Command("doctor", "Check this machine for VFIO: /dev/vfio/vfio, /dev/iommu, the IOMMU, no-IOMMU mode, interrupt remapping, devices bound to VFIO drivers and their groups, cdevs, RLIMIT_MEMLOCK and dma_entry_limit against a mapping plan, access to the device nodes. Each check is ok, warn, fail or skip, with the fix; exits 9 when a check fails.")
        {
            dmaSize,
            dmaMappings,
        };
        doctor.SetAction(p => DoctorCommand.Run(environment, new DoctorCommand.MappingPlan(ParseSize(p.GetValue(dmaSize)!), p.GetValue(dmaMappings)),
            p.GetValue(simulateOption), p.GetValue(jsonOption)));
        root.Subcommands.Add(doctor);

        var demoDevice = new Option<string>("--device") { Description = "The edu device to use; default: the first edu (1234:11e8) bound to a VFIO driver." };
        var demoBackend = new Option<string>("--backend") { Description = backend.Description, DefaultValueFactory = static _ => "auto" };
        demoBackend.AcceptOnlyFromAmong(CliBackends.Names);
        var demo = new Command("demo", "Attach an edu device, map a DMA buffer, check the device, DMA RAM -> edu -> RAM with an MSI after each transfer, compare, unmap and detach, timing each step; exits 7 on any mismatch. Without a VFIO device on this machine (or with --simulate) it runs the same code on the simulator and says so.")
        {
            demoBackend,
            demoDevice,
        };
        demo.SetAction(p => DemoCommand.Run(environment, p.GetValue(demoBackend)!, p.GetValue(demoDevice), p.GetValue(simulateOption), p.GetValue(jsonOption)));
        root.Subcommands.Add(demo);
        return root;
    }

    /// <summary>A size with an optional binary suffix: 4096, 64K, 512M, 4G, 1T.</summary>
    internal static ulong ParseSize(string text)
    {
        string t = text.Trim();
        ulong multiplier = 1;
        if (t.Length > 0 && char.IsLetter(t[^1]))
        {
            multiplier = char.ToUpperInvariant(t[^1]) switch
            {
                'K' => 1UL << 10,
                'M' => 1UL << 20,
                'G' => 1UL << 30,
                'T' => 1UL << 40,
                _ => throw new CliException(ExitCode.Usage, $"'{text}' is not a size.", "Write a number of bytes with an optional K, M, G or T suffix, e.g. 512M."),
            };
            t = t[..^1];
        }
        if (!ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) || value > ulong.MaxValue / multiplier)
        {
            throw new CliException(ExitCode.Usage, $"'{text}' is not a size.", "Write a number of bytes with an optional K, M, G or T suffix, e.g. 512M.");
        }
        return value * multiplier;
    }
}
