// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Core;

namespace Vfio.Samples.FdPassing;

/// <summary>The unprivileged side: a Generic Host whose VFIO services take their fds from the launcher.</summary>
internal static partial class Worker
{
    /// <summary>Runs the worker host.</summary>
    /// <param name="args">Its command line; the launcher passes <c>--Vfio:FdSocket</c>, <c>--Vfio:IommuFd</c>,
    /// <c>--Vfio:DeviceFds:&lt;device&gt;</c> and <c>--Sample:Device</c>.</param>
    /// <param name="kernel">Null for the running kernel; on the simulator, the launcher's simulated kernel, in which
    /// the passed fds exist.</param>
    /// <returns>The exit code: 0 when every check passed.</returns>
    public static async Task<int> RunAsync(string[] args, IKernel? kernel)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });
        if (kernel is not null)
        {
            builder.Services.AddSingleton(kernel);
        }
        // appsettings.json sets Vfio:Backend=iommufd; with Vfio:FdSocket the library receives the named fds, and
        // Vfio:IommuFd / Vfio:DeviceFds make the backend use them instead of opening /dev/iommu and the cdev.
        builder.Services.AddVfio(builder.Configuration.GetSection("Vfio")).AddIommuFdBackend();
        builder.Services.Configure<FdPassingOptions>(builder.Configuration.GetSection("Sample"));
        builder.Services.AddHostedService<EduWorkerService>();

        using IHost host = builder.Build();
        try
        {
            await host.RunAsync();
            return Environment.ExitCode;
        }
        catch (Exception e)
        {
            // E.g. no fds arrived on Vfio:FdSocket, or a passed fd is not what its name claims.
            LogFailed(host.Services.GetRequiredService<ILogger<EduWorkerService>>(), e);
            return 1;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Worker failed to start")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
