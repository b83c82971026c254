// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Reflection;
using System.Text;
using Shouldly;

namespace Vfio.Samples.Tests;

/// <summary>
/// Where the samples run: on the real kernel inside the testbed guest (tests/testbed sets <c>VFIO_TESTBED_SHAPE</c>;
/// the samples need its <c>pci</c> shape: edu at 0000:00:02.0 bound to vfio-pci, iommufd and cdevs), else on the
/// simulator (<c>--Sample:Simulate=true</c>).
/// </summary>
internal static class Target
{
    internal const string Edu = "0000:00:02.0";

    internal static bool IsKernel => Environment.GetEnvironmentVariable("VFIO_TESTBED_SHAPE") switch
    {
        null or "" => false,
        "pci" => true,
        string shape => throw new InvalidOperationException(
            $"The samples need the testbed's pci shape (edu at {Edu} with an IOMMU); this guest is '{shape}'."),
    };

    /// <summary>The switch that puts a sample on the simulator, when the target is the simulator.</summary>
    internal static string[] SimulateArgs => IsKernel ? [] : ["--Sample:Simulate=true"];
}

/// <summary>The samples attach the same edu: on the real kernel they take turns (one test collection).</summary>
[CollectionDefinition(Name)]
public sealed class EduCollection
{
    internal const string Name = "edu";
}

/// <summary>A sample's built program, run as a child process.</summary>
internal static class Sample
{
    private static readonly string s_repoRoot = Metadata("RepoRoot");
    private static readonly string s_configuration = Metadata("Configuration");

    internal static string RepoRoot => s_repoRoot;

    /// <summary>Runs <c>dotnet samples/&lt;folder&gt;/bin/&lt;config&gt;/net10.0/Vfio.Samples.&lt;folder&gt;.dll args</c> from a
    /// folder other than its own (as a user would) and returns its exit code and output (stdout and stderr).</summary>
    internal static async Task<(int ExitCode, string Output)> RunAsync(string folder, params string[] args)
    {
        string dll = Path.Combine(s_repoRoot, "samples", folder, "bin", s_configuration, "net10.0", $"Vfio.Samples.{folder}.dll");
        File.Exists(dll).ShouldBeTrue($"{dll} is not built");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(dll);
        foreach (string argument in args)
        {
            start.ArgumentList.Add(argument);
        }
        // The console logger writes one line per message when it does not see a terminal; keep it plain.
        start.Environment["NO_COLOR"] = "1";
        using Process process = Process.Start(start)!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));   // minutes under TCG in the guest; about a second on the host
        var output = new StringBuilder();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        Task<string> stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        output.Append(await stdout).Append(await stderr);
        TestContext.Current.TestOutputHelper?.WriteLine(output.ToString());
        return (process.ExitCode, output.ToString());
    }

    private static string Metadata(string key) => typeof(Sample).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value ?? throw new InvalidOperationException($"No {key} metadata.");
}
