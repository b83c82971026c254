// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Reflection;

namespace Vfio.Packaging.Tests;

/// <summary>Where the repository is, what it builds, and how these tests run the SDK.</summary>
internal static class Repo
{
    internal static string Root { get; } = Metadata("RepoRoot");

    internal static string Configuration { get; } = Metadata("Configuration");

    /// <summary>The version every package of this build has (0.2.0-preview.1).</summary>
    internal static string PackageVersion { get; } = Metadata("PackageVersion");

    /// <summary>The Microsoft.Extensions version a host of this repository uses (the console app's DI container).</summary>
    internal static string HostExtensionsVersion { get; } = Metadata("MicrosoftExtensionsHostVersion");

    /// <summary>The library packages (the tool package, Vfio.Cli, is checked apart).</summary>
    internal static readonly (string Id, string Project)[] Libraries =
    [
        ("Vfio.Core", "Vfio.Core/Vfio.Core.csproj"),
        ("Vfio.Backends.Legacy", "Backends.Legacy/Vfio.Backends.Legacy.csproj"),
        ("Vfio.Backends.IommuFd", "Backends.IommuFd/Vfio.Backends.IommuFd.csproj"),
        ("Vfio.Devices.Platform", "Devices.Platform/Vfio.Devices.Platform.csproj"),
        ("Vfio.Simulator", "Vfio.Simulator/Vfio.Simulator.csproj"),
    ];

    /// <summary>The dotnet host running these tests when it is one, else the one on PATH.</summary>
    internal static string Dotnet => Path.GetFileName(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    /// <summary>Runs a program and returns its exit code and output; kills it and fails after <paramref name="timeout"/>.</summary>
    internal static (int ExitCode, string Output) Run(string workingDirectory, TimeSpan timeout, string program, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // A run started by dotnet test inherits MSBuild's own variables, which would point the child's build elsewhere.
        foreach (string name in start.Environment.Keys.Where(static k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within {timeout}.");
        }
        string text = $"$ {Path.GetFileName(program)} {string.Join(' ', args)}\nexit {process.ExitCode}\n{output.Result}{error.Result}";
        TestContext.Current.TestOutputHelper?.WriteLine(text);
        return (process.ExitCode, text);
    }

    private static string Metadata(string key) => typeof(Repo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value ?? throw new InvalidOperationException($"No {key} metadata.");
}
