// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.FdPeer;

namespace Vfio.Conformance;

/// <summary>Privilege separation: a launcher opens the nodes and passes the fds, a worker that may open none uses them.</summary>
public sealed partial class FdPassingTests
{
    /// <summary>
    /// This process is the launcher: it opens <c>/dev/iommu</c> and edu's cdev and sends them by name over a connected
    /// Unix socket pair; the worker (<see cref="EduWorker"/>) inherits the other end as <c>Vfio:FdSocket</c>, is
    /// configured with <c>Vfio:IommuFd</c> and <c>Vfio:DeviceFds</c>, fails to open <c>/dev/iommu</c> itself, attaches
    /// edu and completes a DMA round trip. Real kernel: the worker is a second process (<c>Vfio.FdPeer edu-worker</c>)
    /// run as nobody (setpriv), so the nodes (root's, mode 0600) are closed to it. Simulator: it cannot span
    /// processes, so the worker runs in this process with <c>SimulatedKernel.DenyDeviceNodes</c> and the fds still go
    /// over the real socket.
    /// </summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuFdModes), MemberType = typeof(Target))]
    public async Task Launcher_PassesIommuFdAndCdev_WorkerWithoutDeviceNodesAttachesAndDoesDma(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        string edu = Target.Edu;
        string cdev = VfioSysfs.GetCdevPath(rig.Kernel, $"/sys/bus/pci/devices/{edu}").ShouldNotBeNull();
        string path = Path.Combine(Path.GetTempPath(), $"vfio-conformance-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        string report;
        try
        {
            using var launcher = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            launcher.Connect(new UnixDomainSocketEndPoint(path));
            using Socket worker = listener.Accept();

            VfioException.ThrowIfFailed(rig.Kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle iommufd), "open", "/dev/iommu");
            using (iommufd)
            {
                VfioException.ThrowIfFailed(rig.Kernel.Open(cdev, OpenFlags.ReadWrite, out SafeFileHandle device), "open", cdev);
                using (device)
                {
                    FdPassing.Send(launcher, [new NamedFd(EduWorker.IommuFdName, iommufd), new NamedFd(EduWorker.DeviceFdName, device)]);
                }
            }   // the launcher keeps nothing open: the worker's received fds are the only ones

            int fd = (int)worker.SafeHandle.DangerousGetHandle();
            if (rig.Simulator is { } simulator)
            {
                simulator.DenyDeviceNodes = true;
                report = EduWorker.Run(rig.Kernel, fd, edu);
            }
            else
            {
                report = await RunWorkerProcessAsync(fd, edu);
            }
        }
        finally
        {
            File.Delete(path);
        }
        report.ShouldContain("open /dev/iommu: EACCES");
        report.ShouldContain($"attached {edu} group 2");
        report.ShouldContain(EduWorker.Success);
    }

    /// <summary>Starts <c>Vfio.FdPeer edu-worker</c> as nobody with the socket inherited (FD_CLOEXEC cleared for the
    /// start) and returns its output; fails on a non-zero exit with its stderr.</summary>
    private static async Task<string> RunWorkerProcessAsync(int fd, string edu)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        var start = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in (string[])["--reuid=65534", "--regid=65534", "--clear-groups", "--",
            "dotnet", Path.Combine(AppContext.BaseDirectory, "Vfio.FdPeer.dll"), "edu-worker", fd.ToString(CultureInfo.InvariantCulture), edu])
        {
            start.ArgumentList.Add(argument);
        }
        fcntl(fd, F_SETFD, 0).ShouldBe(0);
        Process peer;
        try
        {
            peer = Process.Start(start)!;
        }
        finally
        {
            fcntl(fd, F_SETFD, FD_CLOEXEC).ShouldBe(0);
        }
        using (peer)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(120));
            Task<string> output = peer.StandardOutput.ReadToEndAsync(timeout.Token);
            string errors = await peer.StandardError.ReadToEndAsync(timeout.Token);
            await peer.WaitForExitAsync(timeout.Token);
            string report = await output;
            peer.ExitCode.ShouldBe(0, $"the worker failed: {errors}{report}");
            return report;
        }
    }

    private const int F_SETFD = 2;
    private const int FD_CLOEXEC = 1;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);
}
