// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Samples.Tests;

/// <summary>samples/HostedEdu: the Generic Host worker that drives edu.</summary>
[Collection(EduCollection.Name)]
public sealed class HostedEduTests
{
    [Theory]
    [InlineData("iommufd")]
    [InlineData("legacy")]
    public async Task HostedEdu_OnTheTarget_AttachesEduAndPassesEveryCheck(string backend)
    {
        (int exitCode, string output) = await Sample.RunAsync("HostedEdu", [.. Target.SimulateArgs, $"--Vfio:Backend={backend}"]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain($"Driving edu at {Target.Edu} on {(Target.IsKernel ? "the running kernel" : "the simulator")}");
        output.ShouldContain($"Attached {Target.Edu} through the {backend} backend");
        output.ShouldContain("10! = 3628800");
        output.ShouldContain("1024 bytes intact");
        output.ShouldContain("MSI: 1 interrupt(s) received");
        output.ShouldContain("edu sample passed");
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task HostedEdu_DeviceIsNotEdu_ExitsWithOneNamingIt()
    {
        (int exitCode, string output) = await Sample.RunAsync("HostedEdu", "--Sample:Simulate=true", "--Sample:Device=0000:00:03.0");

        exitCode.ShouldBe(1, output);
        output.ShouldContain("0000:00:03.0 is not an edu device");
        output.ShouldNotContain("edu sample passed");
    }

    [Fact]
    [Trait("Tier", "host")]
    public async Task HostedEdu_BackendNotRegistered_FailsAtStartNamingTheValidValues()
    {
        (int exitCode, string output) = await Sample.RunAsync("HostedEdu", "--Sample:Simulate=true", "--Vfio:Backend=vfio-user");

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("vfio-user");
        output.ShouldNotContain("edu sample passed");
    }
}
