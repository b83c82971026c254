// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Samples.Tests;

/// <summary>samples/Nvme: the user-space NVMe driver on the testbed's nvme (0000:00:03.0), or on the simulator's model.</summary>
public sealed class NvmeSampleTests
{
    private const string Nvme = "0000:00:03.0";

    [Theory]
    [InlineData("iommufd")]
    [InlineData("legacy")]
    public async Task Nvme_OnTheTarget_IdentifiesWritesReadsBackAndShutsDown(string backend)
    {
        string[] simulate = Target.IsKernel ? [] : ["--simulate"];
        (int exitCode, string output) = await Sample.RunAsync("Nvme", [Nvme, "--backend", backend, .. simulate]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain($"Driving NVMe at {Nvme} on {(Target.IsKernel ? "the running kernel" : "the simulator (--simulate was given)")}");
        output.ShouldContain($"Attached {Nvme} through the {backend} backend");
        output.ShouldContain("Identify Controller: model 'QEMU NVMe Ctrl', serial 'vfiotestbed'");
        output.ShouldContain("Namespace 1: 131072 blocks of 512 bytes (64 MiB)");
        output.ShouldContain("Wrote 32 blocks at LBA 131040, flushed, read them back: verified");
        output.ShouldContain("Shut down: I/O queues deleted, controller disabled");
        output.ShouldContain("nvme sample passed");
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task Nvme_DeviceThatIsNotNvme_ExitsWithOneNamingIt()
    {
        (int exitCode, string output) = await Sample.RunAsync("Nvme", Target.Edu, "--simulate");

        exitCode.ShouldBe(1, output);
        output.ShouldContain($"nvme sample failed: NVMe controller {Target.Edu}: class code 0x00ff00 is not an NVMe controller's");
        output.ShouldNotContain("nvme sample passed");
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task Nvme_BadArguments_ExitWithTwoAndTheUsage()
    {
        (int exitCode, string output) = await Sample.RunAsync("Nvme", "--simulate", "--backend", "vfio-user");
        exitCode.ShouldBe(2, output);
        output.ShouldContain("unknown backend 'vfio-user'; use auto, legacy or iommufd");

        (exitCode, output) = await Sample.RunAsync("Nvme", "--frobnicate");
        exitCode.ShouldBe(2, output);
        output.ShouldContain("unknown argument '--frobnicate'");
    }
}
