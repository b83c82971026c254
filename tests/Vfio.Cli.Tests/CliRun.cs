// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Text.Json;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary>One vfioctl invocation in-process: its exit code and what it wrote.</summary>
internal sealed record CliResult(int ExitCode, string Out, string Error)
{
    /// <summary>The whole JSON envelope: schemaVersion, tool, version, command, ok, exitCode, result, error.</summary>
    public JsonElement Root => JsonDocument.Parse(Out).RootElement;

    /// <summary>The command's result in the envelope.</summary>
    public JsonElement Json => Root.GetProperty("result");

    /// <summary>The envelope's error (null when the run succeeded).</summary>
    public JsonElement JsonError => Root.GetProperty("error");

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Error}";
}

internal static class CliRun
{
    /// <summary>Runs vfioctl with <paramref name="simulator"/> as the machine for --simulate (the test keeps and disposes
    /// it) and <paramref name="machine"/> as the machine's own kernel (default: the simulator too).</summary>
    /// <param name="terminal">True to run as on a terminal (stdout and stderr) of <paramref name="width"/> columns.</param>
    internal static CliResult Run(SimulatedKernel simulator, string[] args, IKernel? machine = null, bool terminal = false, bool noColor = false,
        int width = 80, CancellationTokenSource? cancellation = null, TextWriter? output = null)
    {
        output ??= new StringWriter();
        using var error = new StringWriter();
        var environment = new CliEnvironment
        {
            Out = output,
            Error = error,
            Kernel = machine ?? simulator,
            CreateSimulator = () => simulator,
            CreatePowerSimulator = () => simulator,
            OwnsSimulator = false,
            OutIsTerminal = terminal,
            ErrorIsTerminal = terminal,
            NoColor = noColor,
            Width = width,
            Cancellation = cancellation?.Token ?? CancellationToken.None,
        };
        int code = Cli.Run(args, environment);
        return new CliResult(code, output.ToString()!, error.ToString());
    }

    internal static SimulatedKernel Testbed() => new(SimulatedMachines.Testbed());

    /// <summary>The testbed's devices on a simulated POWER host (sPAPR TCE instead of Type1).</summary>
    internal static SimulatedKernel PowerTestbed() => new(SimulatedMachines.Testbed(new() { Spapr = true }));

    /// <summary>Runs <paramref name="program"/> as a child process (after <paramref name="configure"/> adjusts its start)
    /// and returns its exit code and output; kills it and throws after <paramref name="timeout"/>.</summary>
    internal static CliResult Process(string program, IEnumerable<string> args, TimeSpan timeout, Action<ProcessStartInfo>? configure = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        configure?.Invoke(start);
        using System.Diagnostics.Process process = System.Diagnostics.Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}.");
        }
        return new CliResult(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>The cells of <paramref name="device"/>'s row in a table vfioctl printed (split at spaces).</summary>
    internal static string[] Row(string[] lines, string device)
        => lines.Single(l => l.TrimStart().StartsWith(device + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
}
