// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Samples.FdPassing;

/// <summary>
/// The privileged side. It is deliberately small, because it runs with privilege: open the nodes, send them, start
/// the worker, report its exit code. It never attaches the device or maps memory itself.
/// </summary>
internal static partial class Launcher
{
    /// <summary>The name the iommufd is sent under (the worker's <c>Vfio:IommuFd</c>).</summary>
    internal const string IommuFdName = "iommufd";

    /// <summary>The name the device's cdev is sent under (the worker's <c>Vfio:DeviceFds:&lt;device&gt;</c>).</summary>
    internal const string DeviceFdName = "edu";

    public static async Task<int> RunAsync(string[] args)
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        var options = new FdPassingOptions();
        configuration.GetSection("Sample").Bind(options);
        using ILoggerFactory loggers = LoggerFactory.Create(logging => logging.AddConfiguration(configuration.GetSection("Logging")).AddConsole());
        ILogger logger = loggers.CreateLogger(typeof(Launcher).FullName!);
        try
        {
            return await LaunchAsync(options, logger);
        }
        catch (Exception e)
        {
            LogFailed(logger, e);
            return 1;
        }
    }

    private static async Task<int> LaunchAsync(FdPassingOptions options, ILogger logger)
    {
        // --Sample:Simulate=true: the simulator's testbed machine instead of the running kernel (README.md).
        using SimulatedKernel? simulator = options.Simulate ? new SimulatedKernel(SimulatedMachines.Testbed()) : null;
        IKernel kernel = (IKernel?)simulator ?? LinuxKernel.Instance;
        string device = options.Device;
        string cdev = VfioSysfs.GetCdevPath(kernel, $"/sys/bus/pci/devices/{device}")
            ?? throw new InvalidOperationException($"{device} has no VFIO device cdev: bind it to vfio-pci on a kernel with CONFIG_VFIO_DEVICE_CDEV.");

        (Socket socket, SafeSocketHandle workerEnd) = UnixSocketPair.Create();
        using (socket)
        using (workerEnd)
        {
            // 1. Open, with this process's privilege, what the worker may not, and send it by name.
            using (SafeFileHandle iommufd = Open(kernel, "/dev/iommu"))
            using (SafeFileHandle deviceFd = Open(kernel, cdev))
            {
                Vfio.Core.FdPassing.Send(socket, [new NamedFd(IommuFdName, iommufd), new NamedFd(DeviceFdName, deviceFd)]);
            }   // closed here: from now on the worker's copies are the only ones
            LogSent(logger, cdev);

            // 2. The worker's configuration: the inherited socket and which passed fd is what.
            string[] workerArgs =
            [
                $"--Vfio:FdSocket={workerEnd.DangerousGetHandle()}",
                $"--Vfio:IommuFd={IommuFdName}",
                $"--Vfio:DeviceFds:{device.Replace(':', '_')}={DeviceFdName}",   // configuration keys write '_' for ':'
                $"--Sample:Device={device}",
            ];
            if (simulator is not null)
            {
                // The simulator's /dev lives in this process: the worker runs here, and may open no node, as nobody.
                simulator.DenyDeviceNodes = true;
                LogInProcess(logger);
                return await Worker.RunAsync(workerArgs, simulator);
            }
            return await StartWorkerAsync(workerEnd, workerArgs, options, logger);
        }
    }

    /// <summary>Starts this program in the worker role as another user (setpriv), with the socket inherited.</summary>
    private static async Task<int> StartWorkerAsync(SafeSocketHandle socket, string[] workerArgs, FdPassingOptions options, ILogger logger)
    {
        var start = new ProcessStartInfo("setpriv");
        string self = Environment.ProcessPath!;   // dotnet, or this program's apphost
        string[] command = Path.GetFileNameWithoutExtension(self) == "dotnet" ? [self, typeof(Launcher).Assembly.Location] : [self];
        foreach (string argument in (string[])[$"--reuid={options.WorkerUser}", $"--regid={options.WorkerGroup}", "--clear-groups",
            "--", .. command, "worker", .. workerArgs])
        {
            start.ArgumentList.Add(argument);
        }
        // .NET opens every fd close-on-exec; the worker's end must survive exec, and only for this start.
        UnixSocketPair.SetInheritable(socket, true);
        Process worker;
        try
        {
            worker = Process.Start(start) ?? throw new InvalidOperationException("setpriv did not start.");
        }
        finally
        {
            UnixSocketPair.SetInheritable(socket, false);
        }
        using (worker)
        {
            LogStarted(logger, worker.Id, options.WorkerUser, options.WorkerGroup);
            await worker.WaitForExitAsync();
            LogExited(logger, worker.ExitCode);
            return worker.ExitCode;
        }
    }

    private static SafeFileHandle Open(IKernel kernel, string path)
    {
        VfioException.ThrowIfFailed(kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle), "open", path);
        return handle;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Launcher: opened /dev/iommu and {Cdev} and sent them over the worker's socket")]
    private static partial void LogSent(ILogger logger, string cdev);

    [LoggerMessage(Level = LogLevel.Information, Message = "Launcher: simulator: running the worker in this process with the device nodes closed to it")]
    private static partial void LogInProcess(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Launcher: started the worker (pid {Pid}) as uid {Uid} gid {Gid} with the socket inherited")]
    private static partial void LogStarted(ILogger logger, int pid, int uid, int gid);

    [LoggerMessage(Level = LogLevel.Information, Message = "Launcher: the worker exited with {ExitCode}")]
    private static partial void LogExited(ILogger logger, int exitCode);

    [LoggerMessage(Level = LogLevel.Error, Message = "Launcher failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
