// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>The headers the probes compile against are Linux 6.12 and really come from the fetched package.</summary>
public sealed class KernelHeadersTests
{
    [Fact]
    public void Headers_AreLinux612()
    {
        var code = KernelProbe.Host.LinuxVersionCode;
        $"{code >> 16}.{(code >> 8) & 0xFF}".ShouldBe("6.12", $"LINUX_VERSION_CODE of {UapiHeaders.Current.Include} is {code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}");
    }

    [Fact]
    public void Headers_LinuxAndAsmIncludes_ResolveFromTheFetchedHeaders()
    {
        var headers = UapiHeaders.Current;
        var roots = new[] { headers.Include, headers.ArchInclude }.OfType<string>().Select(r => r.TrimEnd('/') + "/").ToArray();
        var kernelHeaders = KernelProbe.Host.IncludedHeaders
            .Where(h => h.Contains("/linux/", StringComparison.Ordinal) || h.Contains("/asm/", StringComparison.Ordinal) || h.Contains("/asm-generic/", StringComparison.Ordinal))
            .ToArray();

        kernelHeaders.ShouldContain(h => h.EndsWith("/linux/vfio.h", StringComparison.Ordinal), "gcc -H lists no linux/vfio.h");
        kernelHeaders.ShouldContain(h => h.EndsWith("/asm/ioctl.h", StringComparison.Ordinal), "gcc -H lists no asm/ioctl.h");
        kernelHeaders.Where(h => !roots.Any(r => h.StartsWith(r, StringComparison.Ordinal)))
            .ShouldBeEmpty($"kernel headers included from outside {string.Join(", ", roots)} (the system's older headers?)");
    }

    [Fact]
    public void Headers_PowerPcProbe_UsesPowerPcAsmIoctl()
    {
        var headers = UapiHeaders.Current;
        KernelProbe.Ppc64le.IncludedHeaders
            .ShouldContain(h => h.StartsWith(headers.Ppc64leInclude.TrimEnd('/') + "/asm/ioctl.h", StringComparison.Ordinal), "the powerpc probe did not include powerpc64le asm/ioctl.h");
    }
}
