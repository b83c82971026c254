// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;

namespace Vfio.Kernel.Tests;

public sealed class FdPassingKernelTests
{
    [Fact]
    public async Task Launcher_PassesIommuFdAndCdev_PeerProcessValidatesThem()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string socketPath = Path.Combine(Path.GetTempPath(), $"vfio-kernel-{Environment.ProcessId}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            string cdev = Guest.EduCdev();
            using SafeFileHandle iommufd = Guest.Open("/dev/iommu");
            using SafeFileHandle device = Guest.Open($"/dev/vfio/devices/{cdev}");
            using SafeFileHandle container = Guest.Open("/dev/vfio/vfio");

            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Vfio.FdPeer.dll"));
            foreach (string argument in (string[])["expect", socketPath, "iommufd=IommuFd", "device=DeviceCdev", "container=Container"])
            {
                start.ArgumentList.Add(argument);
            }
            using Process peer = Process.Start(start)!;
            using (Socket connection = await listener.AcceptAsync(ct))
            {
                FdPassing.Send(connection, [new NamedFd("iommufd", iommufd), new NamedFd("device", device), new NamedFd("container", container)]);
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(120));
            string output = await peer.StandardOutput.ReadToEndAsync(timeout.Token);
            string errors = await peer.StandardError.ReadToEndAsync(timeout.Token);
            await peer.WaitForExitAsync(timeout.Token);
            errors.ShouldBeEmpty();
            peer.ExitCode.ShouldBe(0);
            output.ShouldContain("iommufd: IommuFd iommu");
            output.ShouldContain($"device: DeviceCdev {cdev} {Guest.EduAddress}");
            output.ShouldContain("container: Container vfio");
        }
        finally
        {
            File.Delete(socketPath);
        }
    }
}
