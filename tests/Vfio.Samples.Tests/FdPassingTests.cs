// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Samples.Tests;

/// <summary>samples/FdPassing: a privileged launcher and a worker that has nothing but the fds it passed.</summary>
[Collection(EduCollection.Name)]
public sealed class FdPassingTests
{
    [Fact]
    public async Task FdPassing_OnTheTarget_WorkerWithoutDeviceAccessDrivesEduWithThePassedFds()
    {
        (int exitCode, string output) = await Sample.RunAsync("FdPassing", Target.SimulateArgs);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("Launcher: opened /dev/iommu and /dev/vfio/devices/vfio");
        // Real kernel: a second process as nobody; simulator: in-process with the device nodes denied.
        output.ShouldContain(Target.IsKernel ? "as uid 65534 gid 65534 with the socket inherited" : "running the worker in this process");
        output.ShouldContain("Worker: open /dev/iommu myself: EACCES");
        output.ShouldContain($"Worker: attached {Target.Edu} through the iommufd backend with the passed fds");
        output.ShouldContain("Worker: DMA round trip RAM -> edu -> RAM intact");
        output.ShouldContain("Worker: MSI on DMA completion: 1 interrupt(s), status 100");
        output.ShouldContain("fd-passing sample passed");
        if (Target.IsKernel)
        {
            output.ShouldContain("Launcher: the worker exited with 0");
        }
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task FdPassing_DeviceIsNotEdu_ExitsWithOneNamingIt()
    {
        (int exitCode, string output) = await Sample.RunAsync("FdPassing", "--Sample:Simulate=true", "--Sample:Device=0000:00:03.0");

        exitCode.ShouldBe(1, output);
        output.ShouldContain("0000:00:03.0 is not an edu device");
        output.ShouldNotContain("fd-passing sample passed");
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task FdPassing_NoSuchDevice_LauncherExitsWithOneBeforeStartingTheWorker()
    {
        (int exitCode, string output) = await Sample.RunAsync("FdPassing", "--Sample:Simulate=true", "--Sample:Device=0000:00:09.0");

        exitCode.ShouldBe(1, output);
        output.ShouldContain("0000:00:09.0 has no VFIO device cdev");
        output.ShouldNotContain("Worker:");
    }
}
