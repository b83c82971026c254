// SPDX-License-Identifier: MIT
using System.Text.Json;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Cli.Tests;

/// <summary>One vfioctl invocation in-process: its exit code and what it wrote.</summary>
internal sealed record CliResult(int ExitCode, string Out, string Error)
{
    public JsonElement Json => JsonDocument.Parse(Out).RootElement;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Error}";
}

internal static class CliRun
{
    /// <summary>Runs vfioctl with <paramref name="simulator"/> as the machine for --simulate (the test keeps and disposes
    /// it) and <paramref name="machine"/> as the machine's own kernel (default: the simulator too).</summary>
    internal static CliResult Run(SimulatedKernel simulator, string[] args, IKernel? machine = null)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var environment = new CliEnvironment
        {
            Out = output,
            Error = error,
            Kernel = machine ?? simulator,
            CreateSimulator = () => simulator,
            OwnsSimulator = false,
        };
        int code = Cli.Run(args, environment);
        return new CliResult(code, output.ToString(), error.ToString());
    }

    internal static SimulatedKernel Testbed() => new(SimulatedMachines.Testbed());
}
