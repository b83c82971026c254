// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Cli;

/// <summary>vfioctl's entry point.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        // Ctrl+C (SIGINT) and SIGTERM cancel the command's waits: it tears down and exits 130. A second signal while the
        // first is being handled ends the process as usual.
        using var cancellation = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            if (!cancellation.IsCancellationRequested)
            {
                context.Cancel = true;
                cancellation.Cancel();
            }
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        return Cli.Run(args, CliEnvironment.Process(cancellation.Token));
    }
}
