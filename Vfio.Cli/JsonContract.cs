// SPDX-License-Identifier: MIT
using System.Reflection;
using System.Text.Json.Serialization.Metadata;

namespace Vfio.Cli;

/// <summary>
/// What every <c>--json</c> run prints, success or failure, usage errors included: one object with the contract's
/// version, the command, its outcome and either its result, its error, or both (a demo that failed half-way, a doctor
/// with failed checks). docs/cli-json.md documents every field; a test compares that list with the output.
/// </summary>
/// <typeparam name="TResult">The command's result.</typeparam>
/// <param name="SchemaVersion">The contract's version: <see cref="JsonContract.SchemaVersion"/>.</param>
/// <param name="Tool">"vfioctl".</param>
/// <param name="Version">vfioctl's version.</param>
/// <param name="Command">list, info, doctor or demo; null when the command line named none that exists.</param>
/// <param name="Ok">True when the exit code is 0.</param>
/// <param name="ExitCode">The process's exit code.</param>
/// <param name="Result">The command's result; null when it failed before it had one.</param>
/// <param name="Error">The failure; null when <paramref name="Ok"/>.</param>
internal sealed record JsonEnvelope<TResult>(int SchemaVersion, string Tool, string Version, string? Command, bool Ok, int ExitCode,
    TResult? Result, ErrorReport? Error)
    where TResult : class;

/// <summary>The result of a run that failed before any command had one.</summary>
internal sealed record NoResult;

internal static class JsonContract
{
    /// <summary>The contract's version: raised when a field is removed, renamed or changes meaning (adding one does not).</summary>
    internal const int SchemaVersion = 1;

    internal static string ToolVersion { get; } = typeof(JsonContract).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?
        .InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Writes the envelope of <paramref name="command"/>'s run.</summary>
    internal static void Write<TResult>(CliEnvironment environment, string? command, TResult? result, ErrorReport? error,
        Func<CliJsonContext, JsonTypeInfo<JsonEnvelope<TResult>>> type)
        where TResult : class
    {
        int exitCode = error?.ExitCode ?? 0;
        JsonOutput.Write(environment.Out,
            new JsonEnvelope<TResult>(SchemaVersion, "vfioctl", ToolVersion, command, exitCode == 0, exitCode, result, error), type);
    }

    /// <summary>Writes the envelope of a run that failed without a result (usage errors, a command that threw).</summary>
    internal static void WriteError(CliEnvironment environment, string? command, ErrorReport error)
        => Write<NoResult>(environment, command, null, error, static c => c.JsonEnvelopeNoResult);
}
