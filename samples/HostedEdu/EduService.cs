// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Options;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Samples.HostedEdu;

/// <summary>
/// Attaches edu through the configured backend, checks its registers, does a DMA round trip and takes an MSI, then
/// stops the host: exit code 0 when every check passed, 1 when one did not (or anything failed).
/// </summary>
internal sealed partial class EduService(
    VfioManager vfio, IOptions<EduSampleOptions> options, IHostApplicationLifetime lifetime, ILogger<EduService> logger)
    : BackgroundService
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            LogStarting(logger, options.Value.Device, options.Value.Simulate ? "the simulator" : "the running kernel");
            bool passed = await RunAsync(options.Value.Device, stoppingToken);
            Environment.ExitCode = passed ? 0 : 1;
            if (passed)
            {
                LogPassed(logger);
            }
            else
            {
                LogMismatch(logger);
            }
        }
        catch (Exception e)
        {
            // A VfioException's message says what failed and how to fix it (bind the device, permissions, ...).
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
        #region README: attach, DMA, interrupts
        // vfio: the VfioManager from DI. The backend is the one Vfio:Backend names.
        using DmaSpace space = vfio.CreateDmaSpace("edu");
        using AttachedDevice edu = vfio.AttachDevice(device, space);      // bound to vfio-pci, e.g. "0000:00:02.0"
        using VfioRegionMapping bar0 = edu.Device.MapRegion(VfioPciRegion.Bar0);   // edu's registers, mmap'ed
        if (bar0.Read32(0x00) != 0x010000ed)                             // edu's identification register
        {
            throw new InvalidOperationException($"{device} is not an edu device.");
        }
        ushort command = edu.Device.ReadRegion16(VfioPciRegion.Config, 0x04);
        edu.Device.WriteRegion16(VfioPciRegion.Config, 0x04, (ushort)(command | 0x4));  // bus master: DMA and MSI

        // DMA: page-aligned memory, allocated and mapped into the space in one call (below edu's 28-bit DMA mask);
        // the device reaches it at buffer.Iova. Disposal unmaps it, then frees it.
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, dmaMask: 0x0fff_ffff);
        Random.Shared.NextBytes(buffer.Span[..1024]);
        const ulong eduBuffer = 0x40000;                                  // edu's 4 KiB DMA buffer, in its own space
        EduDma(bar0, source: buffer.Iova, destination: eduBuffer, toRam: false);          // RAM page 0 -> edu
        EduDma(bar0, source: eduBuffer, destination: buffer.Iova + 4096, toRam: true);    // edu -> RAM page 1
        bool dmaIntact = buffer.Span.Slice(4096, 1024).SequenceEqual(buffer.Span[..1024]);

        // Interrupts: one eventfd per MSI vector (VFIO_DEVICE_SET_IRQS), awaited without allocating.
        using var msi = new InterruptEvent();
        edu.Device.SetIrqEventFds(VfioPciIrq.Msi, start: 0, [msi]);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_timeout);
        bar0.Write32(0x60, 1);                                            // edu: raise interrupt status 1
        ulong interrupts = await msi.WaitAsync(timeout.Token);
        bar0.Write32(0x64, 1);                                            // edu: acknowledge it
        edu.Device.DisableIrq(VfioPciIrq.Msi);

        // edu's DMA engine: source, destination, count, then command (start | to RAM); it clears start when done.
        static void EduDma(VfioRegionMapping bar0, ulong source, ulong destination, bool toRam)
        {
            bar0.Write64(0x80, source);
            bar0.Write64(0x88, destination);
            bar0.Write64(0x90, 1024);
            bar0.Write64(0x98, toRam ? 3UL : 1UL);
            long deadline = Environment.TickCount64 + 10_000;
            while ((bar0.Read64(0x98) & 1) != 0)
            {
                if (Environment.TickCount64 > deadline)
                {
                    throw new TimeoutException("edu's DMA did not complete within 10 s.");
                }
                Thread.Sleep(1);
            }
        }
        #endregion

        using var driver = new EduDriver(edu, useMmap: true);      // the rest of edu's register map (samples/Edu)

        LogAttached(logger, edu.Name, edu.Backend.Name, edu.Container.Name, edu.IommuGroup);
        uint factorial = driver.Factorial(10, s_timeout);
        LogFactorial(logger, factorial);
        LogDma(logger, buffer.Iova, dmaIntact ? "intact" : "CORRUPTED");
        LogMsi(logger, interrupts);
        return factorial == 3_628_800 && dmaIntact && interrupts == 1;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Driving edu at {Device} on {Kernel}")]
    private static partial void LogStarting(ILogger logger, string device, string kernel);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attached {Device} through the {Backend} backend ({Container}), IOMMU group {Group}")]
    private static partial void LogAttached(ILogger logger, string device, string backend, string container, int? group);

    [LoggerMessage(Level = LogLevel.Information, Message = "Factorial register: 10! = {Factorial} (expected 3628800)")]
    private static partial void LogFactorial(ILogger logger, uint factorial);

    [LoggerMessage(Level = LogLevel.Information, Message = "DMA round trip RAM -> edu -> RAM through IOVA {Iova:x}: 1024 bytes {Result}")]
    private static partial void LogDma(ILogger logger, ulong iova, string result);

    [LoggerMessage(Level = LogLevel.Information, Message = "MSI: {Count} interrupt(s) received (edu raised 1)")]
    private static partial void LogMsi(ILogger logger, ulong count);

    [LoggerMessage(Level = LogLevel.Information, Message = "edu sample passed: registers, DMA and MSI as expected")]
    private static partial void LogPassed(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "edu sample failed: a result above is not what edu computes")]
    private static partial void LogMismatch(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "edu sample failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
