// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Cli;

/// <summary>vfioctl's exit codes: one per kind of failure, so a script can branch without parsing text.</summary>
internal enum ExitCode
{
    Ok = 0,
    Unexpected = 1,
    Usage = 2,
    DeviceNotFound = 3,
    DeviceUnusable = 4,
    PermissionDenied = 5,
    BackendUnavailable = 6,
    Mismatch = 7,
    KernelError = 8,
    PreflightFailed = 9,
    Cancelled = 130,
}

/// <summary>A failure vfioctl detected itself, with its exit code and the fix.</summary>
internal sealed class CliException(ExitCode code, string message, string? hint = null) : Exception(message)
{
    public ExitCode Code { get; } = code;

    public string? Hint { get; } = hint;
}

internal static class ExitCodes
{
    /// <summary>The table shown in <c>vfioctl --help</c> and in docs/architecture.md.</summary>
    internal static readonly (ExitCode Code, string Meaning)[] Table =
    [
        (ExitCode.Ok, "success (doctor: no check failed)"),
        (ExitCode.Unexpected, "unexpected error (a bug: please report it with the message)"),
        (ExitCode.Usage, "usage: unknown command or option, bad argument"),
        (ExitCode.DeviceNotFound, "device not found in sysfs (vfioctl list shows the candidates)"),
        (ExitCode.DeviceUnusable, "device unusable: not bound to a VFIO driver, IOMMU group not viable, no-IOMMU without opt-in"),
        (ExitCode.PermissionDenied, "permission denied on a /dev/vfio or /dev/iommu node"),
        (ExitCode.BackendUnavailable, "backend unavailable: the kernel lacks what the chosen backend needs"),
        (ExitCode.Mismatch, "demo: a DMA or interrupt check failed (data mismatch, no MSI, device timeout)"),
        (ExitCode.KernelError, "kernel error: a VFIO/iommufd call failed (the message names the ioctl and the fix)"),
        (ExitCode.PreflightFailed, "doctor: at least one check failed"),
        (ExitCode.Cancelled, "cancelled by Ctrl+C (SIGINT) or SIGTERM: the wait stopped and everything set up was released"),
    ];

    internal static string HelpText()
        => "Exit codes:\n" + string.Join("\n", Table.Select(static e => $"  {(int)e.Code,3}  {e.Meaning}"));

    /// <summary>The exit code for a failure, and the fix to print with it.</summary>
    internal static (ExitCode Code, string? Hint) For(Exception exception) => exception switch
    {
        CliException cli => (cli.Code, cli.Hint),
        VfioBackendUnavailableException e => (ExitCode.BackendUnavailable, e.Hint),
        VfioException { Errno: Errno.EACCES } e => (ExitCode.PermissionDenied, e.Hint ?? PermissionHint),
        VfioException { Errno: Errno.EPERM, Operation: "open" } e => (ExitCode.PermissionDenied, e.Hint ?? PermissionHint),
        VfioDeviceUnusableException e => (ExitCode.DeviceUnusable, e.Hint),
        VfioException e => (ExitCode.KernelError, e.Hint),
        TimeoutException => (ExitCode.Mismatch, "The device did not finish in time: check that it is an edu device and that bus mastering and its DMA mask allow the transfer."),
        UnauthorizedAccessException => (ExitCode.PermissionDenied, PermissionHint),
        ArgumentException => (ExitCode.Usage, "See vfioctl --help."),
        _ => (ExitCode.Unexpected, null),
    };

    internal const string PermissionHint
        = "Run as root, or give your user the VFIO nodes: chown $USER /dev/vfio/<group> (legacy) or /dev/vfio/devices/vfioN and /dev/iommu (iommufd), e.g. with a udev rule SUBSYSTEM==\"vfio\", OWNER=\"<user>\"; a launcher can also pass the fds (Vfio:IommuFd, Vfio:DeviceFds).";
}
