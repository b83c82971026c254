// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Win32.SafeHandles;
using Vfio.Backends.IommuFd;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.FdPeer;

/// <summary>
/// The worker side of a privilege-separated setup: it opens no <c>/dev</c> node itself; a launcher passed an iommufd
/// and edu's cdev over a Unix socket it inherited. Configured as an application would be (<c>Vfio:FdSocket</c>,
/// <c>Vfio:IommuFd</c>, <c>Vfio:DeviceFds</c>), it attaches edu and completes a DMA round trip. Run by
/// <c>Vfio.FdPeer edu-worker</c> as a second process on the real kernel, and in-process by the conformance suite on the
/// simulator (which cannot span processes).
/// </summary>
public static class EduWorker
{
    /// <summary>The name the launcher sends the iommufd under.</summary>
    public const string IommuFdName = "iommufd";

    /// <summary>The name the launcher sends edu's cdev under.</summary>
    public const string DeviceFdName = "edu";

    /// <summary>The line the worker reports when the DMA round trip arrived intact.</summary>
    public const string Success = "dma round trip ok";

    /// <summary>Runs the worker; returns what it reports, one line per step. Throws when a step fails.</summary>
    /// <param name="kernel">The kernel.</param>
    /// <param name="socketFd">The inherited socket the launcher sends the fds on.</param>
    /// <param name="device">Edu's PCI address.</param>
    public static string Run(IKernel kernel, int socketFd, string device)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var report = new StringBuilder();

        // The worker may open no device node: that is why the fds are passed.
        int rc = kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle denied);
        denied.Dispose();
        report.AppendLine(CultureInfo.InvariantCulture, $"open /dev/iommu: {(rc < 0 ? ((Errno)(-rc)).ToString() : "opened")}");

        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Vfio:Backend"] = "iommufd",
            ["Vfio:FdSocket"] = socketFd.ToString(CultureInfo.InvariantCulture),
            ["Vfio:IommuFd"] = IommuFdName,
            [$"Vfio:DeviceFds:{device.Replace(':', '_')}"] = DeviceFdName,
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton(kernel);
        services.AddVfio(configuration.GetSection(VfioOptions.SectionName)).AddIommuFdBackend();

        using (ServiceProvider provider = services.BuildServiceProvider())
        {
            VfioManager manager = provider.GetRequiredService<VfioManager>();
            using DmaSpace space = manager.CreateDmaSpace("worker");
            AttachedDevice edu = manager.AttachDevice(VfioDeviceSource.Pci(device), space);
            report.AppendLine(CultureInfo.InvariantCulture, $"attached {edu.Name} group {edu.IommuGroup}");
            using DmaBuffer memory = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
            Span<byte> buffer = memory.Span;

            using var driver = new EduDriver(edu, useMmap: true);
            driver.ReadIdentification().ToString("x8", CultureInfo.InvariantCulture).ShouldBeFor("identification", EduDriver.Identification.ToString("x8", CultureInfo.InvariantCulture));
            driver.EnableBusMaster();
            byte[] pattern = new byte[1024];
            for (int i = 0; i < pattern.Length; i++)
            {
                pattern[i] = (byte)((i * 13) + 5);
            }
            pattern.CopyTo(buffer);
            TimeSpan timeout = TimeSpan.FromSeconds(10);
            driver.DmaToDevice(memory.Iova, 0, 1024, timeout);
            driver.DmaFromDevice(0, memory.Iova + 4096, 1024, timeout);
            if (!buffer.Slice(4096, 1024).SequenceEqual(pattern))
            {
                throw new InvalidOperationException("The DMA round trip through the passed fds returned other bytes.");
            }
            report.AppendLine(Success);
        }
        return report.ToString();
    }

    private static void ShouldBeFor(this string actual, string what, string expected)
    {
        if (actual != expected)
        {
            throw new InvalidOperationException($"edu's {what} is {actual}, not {expected}.");
        }
    }
}
