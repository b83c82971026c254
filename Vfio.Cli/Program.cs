// SPDX-License-Identifier: MIT
namespace Vfio.Cli;

/// <summary>vfioctl's entry point.</summary>
internal static class Program
{
    private static int Main(string[] args) => Cli.Run(args, CliEnvironment.Process());
}
