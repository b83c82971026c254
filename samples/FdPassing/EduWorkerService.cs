// SPDX-License-Identifier: MIT
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Samples.FdPassing;

/// <summary>
/// Attaches edu with the passed fds only, copies a message through edu's DMA engine and back, and takes the MSI edu
/// raises when the DMA completes; then stops the host: exit code 0 when both matched, 1 otherwise.
/// </summary>
internal sealed partial class EduWorkerService(VfioManager vfio, IKernel kernel, IOptions<FdPassingOptions> options,
    IHostApplicationLifetime lifetime, ILogger<EduWorkerService> logger) : BackgroundService
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            Environment.ExitCode = await RunAsync(options.Value.Device, stoppingToken) ? 0 : 1;
        }
        catch (Exception e)
        {
            LogFailed(logger, e);
            Environment.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    private async Task<bool> RunAsync(string device, CancellationToken cancellationToken)
    {
        // This process may open no device node itself: what the launcher passed is all it has.
        int rc = kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle own);
        own.Dispose();
        LogOwnAccess(logger, rc < 0 ? ((Errno)(-rc)).ToString() : "opened (this worker is privileged: run it as another user)");

        using DmaSpace space = vfio.CreateDmaSpace("worker");
        using AttachedDevice edu = vfio.AttachDevice(device, space);   // with the passed iommufd and cdev
        LogAttached(logger, edu.Name, edu.Backend.Name, edu.IommuGroup);
        using var driver = new EduDriver(edu, useMmap: true);
        if (driver.ReadIdentification() != EduDriver.Identification)
        {
            throw new InvalidOperationException($"{device} is not an edu device.");
        }
        driver.EnableBusMaster();
        // edu has no reset: an interrupt status a previous user left unacknowledged would be read as this DMA's.
        driver.AcknowledgeInterrupt(driver.ReadInterruptStatus());
        InterruptEvent msi = driver.EnableMsi();   // Devices.Pci's MSI; the driver's disposal disables it

        // RAM -> edu, clear RAM, edu -> RAM with "raise an interrupt when done".
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 4096, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        byte[] message = Encoding.ASCII.GetBytes($"DMA by an unprivileged worker through passed fds, pid {Environment.ProcessId}");
        message.CopyTo(buffer.Span);
        driver.DmaToDevice(buffer.Iova, 0, (ulong)message.Length, s_timeout);
        buffer.Span.Clear();
        driver.DmaFromDevice(0, buffer.Iova, (ulong)message.Length, s_timeout, raiseInterrupt: true);
        bool dmaIntact = buffer.Span[..message.Length].SequenceEqual(message);
        LogDma(logger, dmaIntact ? "intact" : "CORRUPTED");

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_timeout);
        ulong interrupts = await msi.WaitAsync(timeout.Token);
        uint status = driver.ReadInterruptStatus();
        driver.AcknowledgeInterrupt(status);
        driver.DisableMsi();
        LogMsi(logger, interrupts, status);

        bool passed = dmaIntact && interrupts == 1 && status == EduDriver.DmaInterruptStatus;
        if (passed)
        {
            LogPassed(logger);
        }
        else
        {
            LogMismatch(logger);
        }
        return passed;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker: open /dev/iommu myself: {Result}")]
    private static partial void LogOwnAccess(ILogger logger, string result);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker: attached {Device} through the {Backend} backend with the passed fds, IOMMU group {Group}")]
    private static partial void LogAttached(ILogger logger, string device, string backend, int? group);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker: DMA round trip RAM -> edu -> RAM {Result}")]
    private static partial void LogDma(ILogger logger, string result);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker: MSI on DMA completion: {Count} interrupt(s), status {Status:x} (expected 1, 100)")]
    private static partial void LogMsi(ILogger logger, ulong count, uint status);

    [LoggerMessage(Level = LogLevel.Information, Message = "fd-passing sample passed: the worker drove edu with nothing but the passed fds")]
    private static partial void LogPassed(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "fd-passing sample failed: a result above is not what edu computes")]
    private static partial void LogMismatch(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Worker failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
