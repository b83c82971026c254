// SPDX-License-Identifier: MIT
using System.Diagnostics;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// Locates the Linux 6.12 uAPI headers that <c>fetch-headers.sh</c> unpacks, and the C compiler.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>VFIO_UAPI_INCLUDE</c>: the include directory (holding <c>linux/vfio.h</c>); default
/// <c>${VFIO_CACHE:-/var/cache/vfio-dotnet}/uapi-headers/current/usr/include</c>, where the script puts it.</item>
/// <item><c>VFIO_UAPI_ARCH_INCLUDE</c>: the directory holding this host's <c>asm/</c>; default
/// <c>&lt;include&gt;/&lt;gcc -print-multiarch&gt;</c> (Debian's linux-libc-dev ships every architecture's
/// <c>asm/</c> there), or none when <c>&lt;include&gt;/asm</c> exists (a <c>make headers_install</c> tree).</item>
/// <item><c>VFIO_UAPI_PPC64LE_INCLUDE</c>: the directory holding powerpc64le's <c>asm/</c>; default
/// <c>&lt;include&gt;/powerpc64le-linux-gnu</c>.</item>
/// <item><c>CC</c>: the compiler; default <c>gcc</c>.</item>
/// </list>
/// Missing headers are a failure, never a skip: the message says to run the fetch script.
/// </remarks>
internal sealed record UapiHeaders(string Include, string? ArchInclude, string Ppc64leInclude, string Compiler)
{
    private static readonly Lazy<UapiHeaders> s_current = new(Locate);

    public static UapiHeaders Current => s_current.Value;

    /// <summary>The <c>-I</c> options for the host architecture, most specific last.</summary>
    public IReadOnlyList<string> HostIncludeArgs => ArchInclude is null ? ["-I" + Include] : ["-I" + Include, "-I" + ArchInclude];

    /// <summary>The <c>-I</c> options that make the same headers compute powerpc64le ioctl numbers.</summary>
    public IReadOnlyList<string> Ppc64leIncludeArgs => ["-I" + Include, "-I" + Ppc64leInclude];

    private static UapiHeaders Locate()
    {
        var compiler = Environment.GetEnvironmentVariable("CC") is { Length: > 0 } cc ? cc : "gcc";
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
                    $"Run `sudo {RepoLayout.FetchScript}` (it prints the include directory; set VFIO_UAPI_INCLUDE to use another one).");
            }
        }

        if (!File.ReadAllText(Path.Combine(include, "linux/iommufd.h")).Contains("IOMMU_HWPT_ALLOC", StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"{include}/linux/iommufd.h has no IOMMU_HWPT_ALLOC, so it is older than 6.12 (the system's headers?). Run `sudo {RepoLayout.FetchScript}`.");
        }

        string? archInclude = Environment.GetEnvironmentVariable("VFIO_UAPI_ARCH_INCLUDE") is { Length: > 0 } arch ? arch : null;
        if (archInclude is null && !Directory.Exists(Path.Combine(include, "asm")))
        {
            var multiarch = RunCompilerQuery(compiler, "-print-multiarch");
            if (multiarch.Length == 0)
            {
                multiarch = RunCompilerQuery(compiler, "-dumpmachine");
            }

            archInclude = Path.Combine(include, multiarch);
        }

        if (archInclude is not null && !File.Exists(Path.Combine(archInclude, "asm", "ioctl.h")))
        {
            throw new InvalidOperationException(
                $"{archInclude}/asm/ioctl.h does not exist, so <linux/vfio.h> would take its asm/ headers from the system. " +
                $"Run `sudo {RepoLayout.FetchScript}` or set VFIO_UAPI_ARCH_INCLUDE.");
        }

        var ppc = Environment.GetEnvironmentVariable("VFIO_UAPI_PPC64LE_INCLUDE") is { Length: > 0 } p ? p : Path.Combine(include, "powerpc64le-linux-gnu");
        return new UapiHeaders(include, archInclude, ppc, compiler);
    }

    private static string RunCompilerQuery(string compiler, string option)
    {
        using var process = Process.Start(new ProcessStartInfo(compiler, option)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException($"Could not start {compiler}.");
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output : "";
    }
}
