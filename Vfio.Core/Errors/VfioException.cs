// SPDX-License-Identifier: MIT
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Vfio.Core;

/// <summary>
/// A VFIO or iommufd operation failed. Carries the kernel's errno, the operation (the ioctl or call name) and the
/// object it was applied to, with a message that says what to do about it.
/// </summary>
/// <remarks>
/// Subtypes exist only where a caller branches on them: <see cref="VfioBackendUnavailableException"/> (the
/// configured backend cannot work on this kernel) and <see cref="VfioDeviceUnusableException"/> (the device or its
/// IOMMU group cannot be used as it is). Misuse of the API raises the standard .NET exceptions instead.
/// </remarks>
/// <example>
/// <code>
/// catch (VfioException e) when (e.Errno == Errno.ENOSPC)
/// {
///     // Type1's dma_entry_limit is reached: coalesce mappings or raise vfio_iommu_type1.dma_entry_limit.
/// }
/// </code>
/// </example>
public class VfioException : IOException
{
    /// <summary>Creates an exception for a call that failed with <paramref name="errno"/>.</summary>
    /// <param name="errno">The error the kernel returned, or <see cref="Errno.None"/> for a failure the library detected.</param>
    /// <param name="operation">The operation, e.g. <c>VFIO_GROUP_SET_CONTAINER</c> or <c>open</c>.</param>
    /// <param name="objectName">What it was applied to: a path, <c>group 7</c>, a device name.</param>
    /// <param name="hint">What to do about it; when null a hint is derived from the operation and errno where one is known.</param>
    /// <param name="innerException">The exception that caused this one, if any.</param>
    public VfioException(Errno errno, string operation, string? objectName, string? hint = null, Exception? innerException = null)
        : this(errno, operation, objectName, hint ?? VfioErrorHints.For(errno, operation, objectName), detail: null, innerException)
    {
    }

    /// <summary>Creates an exception for a failure the library detected itself (no errno), described by <paramref name="detail"/>.</summary>
    /// <param name="operation">The operation that failed.</param>
    /// <param name="objectName">What it was applied to.</param>
    /// <param name="detail">What went wrong.</param>
    /// <param name="hint">What to do about it.</param>
    public VfioException(string operation, string? objectName, string detail, string? hint = null)
        : this(Errno.None, operation, objectName, hint, detail, innerException: null)
    {
    }

    private protected VfioException(Errno errno, string operation, string? objectName, string? hint, string? detail, Exception? innerException)
        : base(FormatMessage(errno, operation, objectName, hint, detail), innerException)
    {
        ArgumentException.ThrowIfNullOrEmpty(operation);
        Errno = errno;
        Operation = operation;
        ObjectName = objectName;
        Hint = hint;
        // As the runtime does for errno-based IOExceptions on Unix.
        if (errno != Errno.None)
        {
            HResult = (int)errno;
        }
    }

    /// <summary>The errno the kernel returned, or <see cref="Errno.None"/> when the library detected the failure.</summary>
    public Errno Errno { get; }

    /// <summary>The operation that failed: an ioctl name such as <c>IOMMU_IOAS_MAP</c>, or a call such as <c>open</c>.</summary>
    public string Operation { get; }

    /// <summary>The object the operation was applied to (a path, an IOMMU group, a device), if known.</summary>
    public string? ObjectName { get; }

    /// <summary>What to do about the failure, if the library knows.</summary>
    public string? Hint { get; }

    /// <summary>
    /// Returns <paramref name="result"/> when it is not negative; otherwise throws a <see cref="VfioException"/> for
    /// the errno it carries (the kernel port's convention: a negative result is <c>-errno</c>).
    /// </summary>
    /// <param name="result">A result of an <see cref="IKernel"/> call.</param>
    /// <param name="operation">The operation, e.g. the ioctl name.</param>
    /// <param name="objectName">What it was applied to.</param>
    /// <returns><paramref name="result"/>.</returns>
    public static int ThrowIfFailed(int result, string operation, string? objectName)
    {
        if (result < 0)
        {
            Throw(result, operation, objectName);
        }
        return result;
    }

    /// <inheritdoc cref="ThrowIfFailed(int, string, string?)"/>
    public static long ThrowIfFailed(long result, string operation, string? objectName)
    {
        if (result < 0)
        {
            Throw((int)result, operation, objectName);
        }
        return result;
    }

    /// <summary>Throws the <see cref="VfioException"/> for a negative kernel-port result.</summary>
    /// <param name="result">A negative result (<c>-errno</c>).</param>
    /// <param name="operation">The operation.</param>
    /// <param name="objectName">What it was applied to.</param>
    [DoesNotReturn]
    public static void Throw(int result, string operation, string? objectName)
        => throw new VfioException((Errno)(-result), operation, objectName);

    private static string FormatMessage(Errno errno, string operation, string? objectName, string? hint, string? detail)
    {
        string on = objectName is null ? string.Empty : $" on {objectName}";
        string what = detail ?? (errno == Errno.None
            ? "failed"
            : $"{Marshal.GetPInvokeErrorMessage((int)errno)} ({errno}, errno {(int)errno})");
        string message = detail is null ? $"{operation} failed{on}: {what}." : $"{operation}{on}: {what}";
        if (!message.EndsWith('.'))
        {
            message += ".";
        }
        return hint is null ? message : $"{message} {hint}";
    }
}
