// SPDX-License-Identifier: MIT
namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// Locates the Linux 6.12 uAPI headers that <c>fetch-headers.sh</c> unpacks (Debian's linux-libc-dev 6.12, which
/// holds the architecture-independent headers and, per GNU triplet, every architecture's <c>asm/</c>).
/// </summary>
/// <remarks>
/// <c>VFIO_UAPI_INCLUDE</c> names the include directory (holding <c>linux/vfio.h</c>); the default is
/// <c>${VFIO_CACHE:-/var/cache/vfio-dotnet}/uapi-headers/current/usr/include</c>, where the script puts it. An
/// architecture's <c>asm/</c> is <c>&lt;include&gt;/&lt;triplet&gt;/asm</c>. Missing headers are a failure, never
/// a skip: the message names the script that fetches them.
/// </remarks>
internal sealed record UapiHeaders(string Include)
{
    /// <summary>The fetch script, relative to the repository root (for messages).</summary>
    public const string FetchScript = "tests/Vfio.Abi.Tests/fetch-headers.sh";

    private static readonly Lazy<UapiHeaders> s_current = new(Locate);

    public static UapiHeaders Current => s_current.Value;

    /// <summary>The directory holding <paramref name="arch"/>'s <c>asm/</c>.</summary>
    public string ArchInclude(AbiArch arch) => Path.Combine(Include, arch.Triplet);

    /// <summary>The <c>-I</c> options for <paramref name="arch"/>: both directories, so <c>&lt;linux/vfio.h&gt;</c>
    /// takes its <c>asm/</c> from the 6.12 package and never from a system or cross-compiler sysroot.</summary>
    public IReadOnlyList<string> IncludeArgs(AbiArch arch)
    {
        var archInclude = ArchInclude(arch);
        if (!File.Exists(Path.Combine(archInclude, "asm", "ioctl.h")))
        {
            throw new InvalidOperationException(
                $"{archInclude}/asm/ioctl.h does not exist: the headers in {Include} have no {arch.Name} asm/. " +
                $"Run `sudo {FetchScript}` (Debian's linux-libc-dev 6.12 ships every architecture's asm/).");
        }

        return ["-I" + Include, "-I" + archInclude];
    }

    private static UapiHeaders Locate()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("VFIO_UAPI_INCLUDE");
        var cacheRoot = Environment.GetEnvironmentVariable("VFIO_CACHE") is { Length: > 0 } cache ? cache : "/var/cache/vfio-dotnet";
        var include = fromEnvironment is { Length: > 0 } ? fromEnvironment : Path.Combine(cacheRoot, "uapi-headers", "current", "usr", "include");
        var source = fromEnvironment is { Length: > 0 } ? "VFIO_UAPI_INCLUDE" : "the fetch script's default cache";

        foreach (var header in new[] { "linux/vfio.h", "linux/iommufd.h" })
        {
            if (!File.Exists(Path.Combine(include, header)))
            {
                throw new InvalidOperationException(
                    $"The Linux 6.12 uAPI headers are missing: {Path.Combine(include, header)} (from {source}) does not exist. " +
                    $"Run `sudo {FetchScript}` (it prints the include directory; set VFIO_UAPI_INCLUDE to use another one).");
            }
        }

        if (!File.ReadAllText(Path.Combine(include, "linux/iommufd.h")).Contains("IOMMU_HWPT_ALLOC", StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"{include}/linux/iommufd.h has no IOMMU_HWPT_ALLOC, so it is older than 6.12 (the system's headers?). Run `sudo {FetchScript}`.");
        }

        return new UapiHeaders(include);
    }
}
